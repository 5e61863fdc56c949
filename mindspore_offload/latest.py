"""A fixed-name 'latest' checkpoint kept crash-safe during ``Model.train``, one file per rank, and the
helper that finds, after a crash, the newest step every rank can resume from.

File names (``directory`` and ``prefix`` as for MindSpore's ``ModelCheckpoint``):

- one process: ``<prefix>_latest.<format>`` and ``<prefix>_previous.<format>``;
- ``N`` ranks: ``<prefix>_latest_rank<r>of<N>.<format>`` and ``<prefix>_previous_rank<r>of<N>.<format>``.

The names hold no ``-`` after the prefix, so ``ModelCheckpoint``'s numbered ``<prefix>-<epoch>_<step>``
files, its ``keep_checkpoint_max`` clean-up and its renaming of a reused prefix never touch them. The
rank count is in the name because a rank's file need not hold the whole state (a sharded optimizer keeps
1/N of the moments on each rank): a run with another N finds no files instead of wrong ones.

Why two files per rank: ranks die at different moments, so after a crash rank 0 may have saved step 12
while rank 1 still has step 11. With the previous save kept, every rank holds the newest step all
ranks reached, and :func:`find_resume_checkpoint` picks it.
"""
import os
import time

from mindspore.train.callback import Callback, CheckpointConfig

from mindspore_offload.safe_save import check_target, save_replacing

__all__ = ["LatestCheckpoint", "latest_checkpoint_path", "find_resume_checkpoint"]

_STEP_NAMES = ("global_step", "step_num")


def _world():
    """(rank, group size) of MindSpore's world group; (None, 1) when communication is not initialised."""
    from mindspore.communication.management import GlobalComm, get_group_size, get_rank

    if not GlobalComm.INITED:
        return None, 1
    size = get_group_size()
    return (get_rank() if size > 1 else None), size


def latest_checkpoint_path(directory, prefix="CKP", rank=None, group_size=1, format="ckpt", previous=False):
    """The path :class:`LatestCheckpoint` writes for ``rank`` of ``group_size`` (``rank=None``: one process).

    With ``previous=True``, the path of the save before it.
    """
    kind = "previous" if previous else "latest"
    if rank is None or group_size <= 1:
        name = f"{prefix}_{kind}.{format}"
    else:
        if not 0 <= rank < group_size:
            raise ValueError(f"For 'latest_checkpoint_path', the 'rank' must be in [0, {group_size}), "
                             f"but got {rank}.")
        name = f"{prefix}_{kind}_rank{rank}of{group_size}.{format}"
    return os.path.join(os.path.abspath(directory), name)


def checkpoint_step(path, format="ckpt"):
    """The optimizer's ``global_step`` (or a saved ``step_num``) in a checkpoint; None if unreadable."""
    import mindspore as ms

    try:
        saved = ms.load_checkpoint(path, choice_func=lambda name: name in _STEP_NAMES, format=format)
    except Exception:  # noqa: BLE001  (a missing or unreadable file is simply not a candidate)
        return None
    for name in _STEP_NAMES:
        if name in saved:
            return int(saved[name].asnumpy().reshape(-1)[0])
    return None


def find_resume_checkpoint(directory, prefix="CKP", group_size=None, format="ckpt"):
    """The newest step every rank has a complete checkpoint of, and each rank's file for it.

    Args:
        directory (str): where :class:`LatestCheckpoint` saved.
        prefix (str): its prefix. Default: ``"CKP"``.
        group_size (int): the number of ranks that saved; default: this run's world size (1 when
            communication is not initialised).
        format (str): ``"ckpt"`` or ``"safetensors"``. Default: ``"ckpt"``.

    Returns:
        tuple (step, paths): ``paths[r]`` is rank r's file at ``step`` (one path for one process); load
        it with :func:`load_param_into_net_checked`.

    Raises:
        FileNotFoundError: no step is saved by every rank (none saved yet, or saved with another rank count).
    """
    if group_size is None:
        group_size = _world()[1]
    ranks = [None] if group_size <= 1 else list(range(group_size))
    per_rank = []
    for rank in ranks:
        found = {}
        for previous in (False, True):
            path = latest_checkpoint_path(directory, prefix, rank, group_size, format, previous)
            step = checkpoint_step(path, format) if os.path.isfile(path) else None
            if step is not None:
                found.setdefault(step, path)
        per_rank.append(found)
    common = set(per_rank[0]).intersection(*per_rank[1:])
    if not common:
        pattern = latest_checkpoint_path(directory, prefix, 0 if group_size > 1 else None, group_size, format)
        seen = [sorted(found) for found in per_rank]
        raise FileNotFoundError(f"For 'find_resume_checkpoint', no step is saved by all {group_size} rank(s) "
                                f"in '{directory}' (files like '{os.path.basename(pattern)}'; steps found per "
                                f"rank: {seen}). Was it saved by a run with another number of ranks or "
                                f"another prefix?")
    step = max(common)
    return step, [found[step] for found in per_rank]


class LatestCheckpoint(Callback):
    """Keeps ``<prefix>_latest.ckpt`` (and the save before it) crash-safe during ``Model.train``.

    A companion to MindSpore's ``ModelCheckpoint``, which writes a new numbered file at each save: this
    one overwrites one fixed name per rank, through :func:`mindspore_offload.save_checkpoint`, so the
    file is always a complete checkpoint, however the process ends. Use both: numbered files for history,
    the latest file for restarting (:func:`find_resume_checkpoint` says which file each rank loads).

    Args:
        prefix (str): the start of the file name. Default: ``"CKP"`` (``ModelCheckpoint``'s default).
        directory (str): the folder, created if missing. Default: the current folder.
        config (CheckpointConfig): when and what to save, as for ``ModelCheckpoint``:
            ``save_checkpoint_steps`` or ``save_checkpoint_seconds``, ``saved_network``,
            ``integrated_save``, ``append_info``, ``enc_key``, ``enc_mode``, ``crc_check``, ``format``.
            ``keep_checkpoint_*`` do not apply. Default: ``CheckpointConfig()`` (every step).
        keep_previous (bool): also keep the save before the latest (``<prefix>_previous...``), so that
            ranks killed at different moments still share a step to resume from. Default: ``True``.

    Raises:
        ValueError: ``prefix`` is not a string free of '/' and '-', or ``config`` asks for
            ``async_save``, ``exception_save`` or ``remove_redundancy`` (which do not give a complete
            file at a fixed name).
        TypeError: ``config`` is not a ``CheckpointConfig``.
    """

    def __init__(self, prefix="CKP", directory=None, config=None, keep_previous=True):
        super().__init__()
        if not isinstance(prefix, str) or not prefix or "/" in prefix or "-" in prefix:
            raise ValueError(f"For 'LatestCheckpoint', the 'prefix' must be a non-empty string without '/' "
                             f"or '-', but got {prefix!r}.")
        if config is None:
            config = CheckpointConfig()
        if not isinstance(config, CheckpointConfig):
            raise TypeError(f"For 'LatestCheckpoint', the 'config' must be a CheckpointConfig, "
                            f"but got {type(config)}.")
        for option in ("async_save", "exception_save", "remove_redundancy"):
            if getattr(config, option, False):
                raise ValueError(f"For 'LatestCheckpoint', the config's '{option}' must be off: it does not "
                                 f"write a complete file at a fixed name. Keep it for ModelCheckpoint only.")
        self._prefix = prefix
        self._directory = os.path.abspath(directory if directory is not None else os.getcwd())
        os.makedirs(self._directory, exist_ok=True)
        self._config = config
        self._keep_previous = keep_previous
        self._append_dict = dict(config.append_dict or {})
        self._last_step = 0
        self._last_time = time.time()
        self.latest_path = None  # set at each save

    def _due(self, step):
        steps, seconds = self._config.save_checkpoint_steps, self._config.save_checkpoint_seconds
        if steps and steps > 0:
            return step >= self._last_step + steps
        if seconds and seconds > 0:
            return time.time() - self._last_time > seconds
        return False

    def _save(self, cb_params):
        rank, size = _world()
        fmt = self._config.format
        path = latest_checkpoint_path(self._directory, self._prefix, rank, size, fmt)
        previous = latest_checkpoint_path(self._directory, self._prefix, rank, size, fmt, previous=True)
        network = self._config.saved_network if self._config.saved_network is not None else cb_params.train_network
        append = dict(self._append_dict)
        if "epoch_num" in append:
            append["epoch_num"] = self._append_dict["epoch_num"] + cb_params.cur_epoch_num
        if "step_num" in append:
            append["step_num"] = self._append_dict["step_num"] + cb_params.cur_step_num
        check_target(network, path, fmt)
        self.latest_path = save_replacing(
            network, path, fmt, previous=previous if self._keep_previous else None,
            integrated_save=self._config.integrated_save, async_save=False, append_dict=append or None,
            enc_key=self._config.enc_key, enc_mode=self._config.enc_mode, crc_check=self._config.crc_check)
        self._last_step = cb_params.cur_step_num
        self._last_time = time.time()

    def on_train_step_end(self, run_context):
        cb_params = run_context.original_args()
        if self._due(cb_params.cur_step_num):
            self._save(cb_params)

    def on_train_end(self, run_context):
        cb_params = run_context.original_args()
        if cb_params.cur_step_num != self._last_step:
            self._save(cb_params)
