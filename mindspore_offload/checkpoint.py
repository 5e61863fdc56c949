"""All-or-nothing checkpoint loading.

MindSpore 2.10's ``load_param_into_net`` is not atomic: a missing moment is skipped silently (even with
``strict_load=True``) and a mis-shaped one raises only after every parameter before it has been
overwritten. This checks the whole checkpoint against the cell first and loads only when it all fits.

Sharded optimizer state (``AdamOffload(..., shard_state=True)``): each rank saves its own slices of the
moments (and of the float32 masters of 16-bit parameters) and its layout (``shard_layout``: its rank, the
rank count, the size threshold). :func:`merge_sharded_checkpoints` (or ``python -m
mindspore_offload.checkpoint merge OUT IN0 IN1 ...``) joins the per-rank files of one save, given in any
order, into one whole checkpoint, which unsharded runs, ``nn.AdamOffload`` and sharded runs with any number
of ranks load (the loader cuts each rank's slices from it). A rank's own file loads only into the rank and
layout it records.

Paths are read in the format their name ends with (``.safetensors``, else ``.ckpt``), as MindSpore
requires.
"""
import argparse
import os
import sys

import numpy as np

from mindspore_offload import _sharding

__all__ = ["load_param_into_net_checked", "load_float32_checkpoint", "merge_sharded_checkpoints"]

_FORMATS = ("ckpt", "safetensors")


def _format_of(path):
    """The format MindSpore reads ``path`` in: it accepts a file only in the format its name ends with."""
    return "safetensors" if os.fspath(path).endswith("safetensors") else "ckpt"


def _read(path):
    import mindspore as ms

    return ms.load_checkpoint(os.fspath(path), format=_format_of(path))


def _optimizers(net):
    """Every AdamOffload and AdamWeightDecayOffload in ``net``."""
    from mindspore_offload._host_state import HostStateOptimizer

    return [cell for _, cell in net.cells_and_names() if isinstance(cell, HostStateOptimizer)]


def _master_names(net):
    """{master name: its 16-bit parameter's name} for every AdamOffload inside ``net`` (found by object,
    so a cell that prefixes names still gets its masters recognised)."""
    pairs = {}
    for optimizer in _optimizers(net):
        pairs.update(optimizer.master_names())
    return pairs


def _sliced_state(net):
    """{moment or master name: (whole shape, rank, ranks)} for every sliced one in ``net``'s optimizers."""
    sliced = {}
    for optimizer in _optimizers(net):
        sliced.update(optimizer.sliced_state())
    return sliced


def _layout_in(net):
    """The layout of the sharded AdamOffload in ``net`` (every one in a process has the same), or None."""
    return next((opt.shard for opt in _optimizers(net) if opt.shard is not None), None)


def load_param_into_net_checked(net, parameter_dict, strict=True):
    """Loads a checkpoint into ``net`` (a network or a train cell with its optimizer) all or nothing.

    Args:
        net (Cell): the cell to load into, e.g. ``nn.TrainOneStepCell(..., AdamOffload(...))``.
        parameter_dict (Union[dict, str]): what ``mindspore.load_checkpoint`` returns, or a checkpoint path
            (``.ckpt``, or ``.safetensors``: read in the format its name ends with).
        strict (bool): every parameter of ``net`` must be in the checkpoint. With False, parameters the
            checkpoint lacks keep their values; those it has must still match. Default: ``True``.

    Returns:
        tuple, ``mindspore.load_param_into_net``'s (param_not_load, ckpt_not_load).

    Raises:
        ValueError: a parameter is missing (with ``strict``; a ``master.*`` entry even without it), or its
            shape or dtype differs from the checkpoint's; or the checkpoint holds one rank's slices of a
            sharded run that is not this one (see below). Nothing in ``net`` has changed when it is
            raised; the message lists every problem.

    16-bit parameters: with ``strict=False``, a float16/bfloat16 parameter the checkpoint lacks while it
    holds the parameter's master (``master.<name>``) is set to that master rounded to nearest even, as
    the host pass rounds: the loaded master wins, so the parameter stays the master rounded. (A master
    that is one rank's slice cannot give the whole parameter: that is refused.)

    Sharded runs (an ``AdamOffload(..., shard_state=True)`` in ``net``): a whole checkpoint (merged, or
    saved unsharded) has its moments and masters cut to this rank's slices. A rank's own file records
    its layout (``shard_layout``: rank, rank count, size threshold) and loads only where this run's
    layout is the same; another rank's file, or a file of another rank count or threshold, is refused
    naming both layouts and the merge command, and so are slices that record no layout. The
    ``shard_layout`` entry is checked, never loaded: this run keeps its own.
    """
    import mindspore as ms

    from mindspore_offload import _masters

    source = "The checkpoint"
    if isinstance(parameter_dict, (str, os.PathLike)):
        source = f"The checkpoint '{os.fspath(parameter_dict)}'"
        parameter_dict = _read(parameter_dict)
    masters = _master_names(net)
    parameter_dict = dict(parameter_dict)  # slices replace whole moments below; the caller's dict stays
    layout = _sliced_state(net)
    own = _layout_in(net)
    recorded = _sharding.recorded_layout(parameter_dict, source)
    if own is not None and recorded is not None and recorded != own:
        raise ValueError(f"{source} holds the optimizer state of {recorded.described()}, but this run is "
                         f"{own.described()}; nothing was loaded. Load this rank's own file of that save. "
                         + MERGE_HINT)
    parameter_dict.pop(_sharding.LAYOUT_NAME, None)
    if own is not None:  # this run's own layout, so that loading leaves it as it is
        own_layout = _sharding.layout_parameter(own)
        parameter_dict[own_layout.name] = own_layout
    params = {param.name: param for param in net.get_parameters()}
    missing, mismatched, sliced, unrecorded = [], [], [], []
    if not strict:
        mismatched += _round_masters(masters, params, parameter_dict, _masters.round_to)
    for param in params.values():
        saved = parameter_dict.get(param.name)
        if saved is None:
            # A master is never optional beside its parameter: the 16-bit value alone cannot restore it.
            if strict or masters.get(param.name) in parameter_dict:
                missing.append(param.name)
        elif param.name in layout and tuple(saved.shape) == layout[param.name][0] and saved.dtype == param.dtype:
            piece = _sharding.slice_of(saved.asnumpy(), *layout[param.name][1:])
            parameter_dict[param.name] = ms.Parameter(ms.Tensor(piece), name=param.name)
        elif param.name in layout and recorded is None and tuple(saved.shape) == tuple(param.shape):
            unrecorded.append(param.name)
        elif tuple(saved.shape) != tuple(param.shape) and looks_sliced(param.name, saved, parameter_dict):
            sliced.append(param.name)
        elif tuple(saved.shape) != tuple(param.shape) or saved.dtype != param.dtype:
            mismatched.append(f"'{param.name}' is {tuple(saved.shape)} {saved.dtype} in the checkpoint but "
                              f"{tuple(param.shape)} {param.dtype} in the network")
    if unrecorded:
        raise ValueError(f"{source} holds slices {unrecorded} but records no shard layout "
                         f"('{_sharding.LAYOUT_NAME}'), so which rank saved them is unknown; nothing was loaded. "
                         "Load a whole checkpoint (merged from files that record their layouts, or saved "
                         "without shard_state) instead.")
    if sliced:
        whose = f" (the file holds {recorded.described()}; this run is not sharded)" if recorded and not own else ""
        raise ValueError(f"{source} does not fit the network; nothing was loaded. {sliced} are slices of a "
                         f"different layout than this network's{whose}. " + MERGE_HINT)
    if missing or mismatched:
        problems = ([f"missing from the checkpoint: {missing}"] if missing else []) + mismatched
        if any(name in masters for name in missing):
            problems.append("the float32 master weights of a 16-bit parameter cannot be rebuilt from the 16-bit "
                            "parameter; to start from a float32 checkpoint use load_float32_checkpoint")
        raise ValueError(f"{source} does not fit the network; nothing was loaded. " + "; ".join(problems) +
                         ". Load a checkpoint saved from the same network and optimizer (pass strict=False to "
                         "keep parameters the checkpoint lacks).")
    return ms.load_param_into_net(net, parameter_dict, strict_load=True)


def _round_masters(masters, params, parameter_dict, round_to):
    """With strict=False: each 16-bit parameter the checkpoint lacks beside its master gets the master
    rounded (added to ``parameter_dict``). Returns the problems: a master that is a slice."""
    import mindspore as ms

    problems = []
    for master, name in masters.items():
        saved = parameter_dict.get(master)
        if name in parameter_dict or saved is None or saved.dtype != ms.float32:
            continue  # nothing to rebuild, or a master of another dtype (reported as such)
        param = params[name]
        if tuple(saved.shape) == tuple(param.shape):
            parameter_dict[name] = ms.Parameter(round_to(saved.asnumpy(), param.dtype), name=name)
        elif len(saved.shape) == 1 and int(saved.shape[0]) < param.size:
            problems.append(f"'{name}' is missing beside its master '{master}', which holds only one rank's slice "
                            f"of it: load a checkpoint that holds '{name}' too, or a merged one")
    return problems


def load_float32_checkpoint(net, parameter_dict, strict=True):
    """Loads a float32 checkpoint into a network whose parameters are partly float16/bfloat16.

    For a checkpoint written with float32 parameters (by ``nn.AdamOffload`` or by our float32 path) and a
    ``net`` trained by AdamOffload with 16-bit parameters: each 16-bit parameter ``X`` with a master
    (``master.X``) in ``net`` gets the checkpoint's float32 ``X`` as its master and ``X`` rounded to nearest
    even (as the host pass rounds) as its own value; everything else (moments, powers, step, float32
    parameters) loads as it is. Checked all or nothing by :func:`load_param_into_net_checked`.

    Args:
        net (Cell): the network and its AdamOffload, e.g. a ``TrainOneStepCell``.
        parameter_dict (Union[dict, str]): what ``mindspore.load_checkpoint`` returns, or a checkpoint path
            (``.ckpt`` or ``.safetensors``).
        strict (bool): as :func:`load_param_into_net_checked`.

    Returns:
        tuple, ``mindspore.load_param_into_net``'s (param_not_load, ckpt_not_load).

    Raises:
        ValueError: as :func:`load_param_into_net_checked` (e.g. the checkpoint lacks a parameter's
            float32 value, or a shape differs); nothing has changed when it is raised.
    """
    import mindspore as ms

    from mindspore_offload import _masters

    if isinstance(parameter_dict, (str, os.PathLike)):
        parameter_dict = _read(parameter_dict)
    converted = dict(parameter_dict)
    params = {param.name: param for param in net.get_parameters()}
    for master, name in _master_names(net).items():
        saved = parameter_dict.get(name)
        if saved is None or saved.dtype != ms.float32:
            continue  # left for the checked load to report (or to take, if it is 16-bit already)
        value = saved.asnumpy()
        converted[master] = ms.Parameter(ms.Tensor(value), name=master)
        converted[name] = ms.Parameter(_masters.round_to(value, params[name].dtype), name=name)
    return load_param_into_net_checked(net, converted, strict=strict)


def merge_sharded_checkpoints(checkpoints, out=None, format=None):  # noqa: A002 (MindSpore's name)
    """Joins the per-rank checkpoints of a sharded ``AdamOffload`` save into one whole checkpoint.

    Args:
        checkpoints (list[Union[str, dict]]): every rank's checkpoint of one save (paths, or what
            ``mindspore.load_checkpoint`` returns), in any order: each records its rank.
        out (str): where to write the merged checkpoint, exactly this name, which must end in ``.ckpt``
            or ``.safetensors`` (MindSpore loads a file only in the format its name ends with). It is
            written with ``mindspore_offload.save_checkpoint``, so a crash leaves an existing file whole.
            Nothing is written when None. Default: ``None``.
        format (str): ``"ckpt"`` or ``"safetensors"``; it must agree with ``out``'s name. Default: the
            format ``out``'s name ends with.

    Returns:
        dict, {name: numpy.ndarray}: every moment and master whole (the parameter's shape), the rest from
        rank 0, without the layout entry: a whole checkpoint, as an unsharded run saves it.

    Raises:
        ValueError: ``out`` does not end in its format; a file cannot be read or records no layout; two
            files hold one rank, a rank is missing, or the files disagree on the rank count or threshold;
            the files are not of one save (their step, beta powers, or anything every rank holds whole
            differ). The message names the file; nothing is written.
        OSError: ``out`` could not be written (the file there, if any, is as it was).
    """
    target, fmt = (None, None) if out is None else _output(out, format)
    if not checkpoints:
        raise ValueError("For 'merge_sharded_checkpoints', pass every rank's checkpoint of one save; got none.")
    names, states = [], []
    for index, item in enumerate(checkpoints):
        if isinstance(item, (str, os.PathLike)):
            names.append(os.fspath(item))
            try:
                item = _read(item)
            except Exception as error:  # noqa: BLE001  (MindSpore raises several kinds; each names the file)
                detail = " ".join(str(error).split())
                raise ValueError(f"'{names[-1]}' could not be read as a {_format_of(names[-1])} checkpoint: "
                                 f"{detail}") from error
        else:
            names.append(f"checkpoints[{index}]")
        states.append({name: value.asnumpy() if hasattr(value, "asnumpy") else value for name, value in item.items()})
    merged = merge_states(in_rank_order(states, names))
    if target is not None:  # crash-safe: an existing merged file is replaced whole or left as it was
        import mindspore as ms

        from mindspore_offload.safe_save import save_checkpoint

        save_checkpoint([{"name": name, "data": ms.Tensor(value)} for name, value in merged.items()], target,
                        format=fmt)
    return merged


# Sharded checkpoints. A sharded rank saves its own slices under the usual names, and its layout under
# _sharding.LAYOUT_NAME; in_rank_order() and merge_states() turn the N per-rank files into one whole
# checkpoint (the format of an unsharded run and of nn.AdamOffload, without the layout), and
# load_param_into_net_checked checks a file's layout against this run's and cuts a whole checkpoint's moments
# to this rank's slices (slice_of) while loading it.

# A sliced 16-bit parameter's master is cut, saved and merged like its moments.
_MOMENT_PREFIXES = ("moment1.", "moment2.", "adam_m.", "adam_v.", "master.")


def _base_name(name):
    for prefix in _MOMENT_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return None


def _is_slice(name, state):
    """Whether entry ``name`` of a rank's state is a slice: a moment or master whose shape is not its
    parameter's."""
    base = _base_name(name)
    return base is not None and base in state and tuple(state[name].shape) != tuple(state[base].shape)


def _values(mine, theirs):
    """' (A against B)' for a few values, else nothing."""
    if mine.size > 4 or theirs.size > 4:
        return ""
    return f" ({mine.reshape(-1).tolist()} against {theirs.reshape(-1).tolist()})"


# Compared first, so that files of two saves are reported by their step.
_SAVE_MARKS = ("global_step", "beta1_power", "beta2_power")


def in_rank_order(states, names):
    """The states (dicts of NumPy arrays) of every rank's checkpoint of one sharded save, put in rank order
    by the Layout each records. ``names[i]`` names ``states[i]`` in errors.

    Raises ValueError, naming the file, when a file records no layout, two files hold one rank, a rank is
    missing, the files disagree on the rank count or threshold, or they are not all from one save: the
    entries that every rank holds whole (step, beta powers, parameters, whole moments) must be equal,
    bit for bit, and every file must hold the same names.
    """
    layouts = [_sharding.recorded_layout(state, f"'{name}'") for state, name in zip(states, names)]
    for name, layout in zip(names, layouts):
        if layout is None:
            raise ValueError(f"'{name}' records no shard layout ('{_sharding.LAYOUT_NAME}'): it is not one rank's "
                             "checkpoint of a shard_state=True run (a whole checkpoint needs no merge), or it was "
                             "saved before the layout was recorded.")
    for name, layout in zip(names[1:], layouts[1:]):
        if layout[1:] != layouts[0][1:]:
            raise ValueError(f"'{name}' holds {layout.described()}, but '{names[0]}' holds "
                             f"{layouts[0].described()}: the files are not of one save.")
    ranks = layouts[0].ranks
    by_rank = {}
    for index, layout in enumerate(layouts):
        if layout.rank in by_rank:
            other = names[by_rank[layout.rank]]
            if other == names[index]:
                raise ValueError(f"'{other}' is given twice (it holds rank {layout.rank} of {ranks}); pass each "
                                 "rank's file once.")
            raise ValueError(f"'{names[index]}' and '{other}' both hold rank {layout.rank} of {ranks}: pass one "
                             "file per rank, all of one save.")
        by_rank[layout.rank] = index
    missing = [rank for rank in range(ranks) if rank not in by_rank]
    if missing:
        given = ", ".join(f"'{name}' (rank {layout.rank})" for name, layout in zip(names, layouts))
        what = f"rank {missing[0]}'s file is" if len(missing) == 1 else f"the files of ranks {missing} are"
        raise ValueError(f"{what} missing: the save has {ranks} ranks, and the files given are {given}. Pass every "
                         "rank's file of one save.")
    ordered = [by_rank[rank] for rank in range(ranks)]
    first, first_name = states[ordered[0]], names[ordered[0]]
    for index in ordered[1:]:
        state, name = states[index], names[index]
        for key in sorted(set(first) ^ set(state)):
            holder, lacker = (first_name, name) if key in first else (name, first_name)
            raise ValueError(f"'{lacker}' lacks '{key}', which '{holder}' holds: the files are not of one save.")
        keys = [k for k in _SAVE_MARKS if k in first] + [k for k in first if k not in _SAVE_MARKS]
        for key in keys:
            if key == _sharding.LAYOUT_NAME or _is_slice(key, first):
                continue
            mine, theirs = np.asarray(state[key]), np.asarray(first[key])
            if mine.dtype != theirs.dtype or mine.shape != theirs.shape or mine.tobytes() != theirs.tobytes():
                raise ValueError(f"'{name}' is not from the same save as '{first_name}': '{key}' differs"
                                 f"{_values(mine, theirs)}, and every rank of one save holds the same.")
    return [states[index] for index in ordered]


def merge_states(states, names=None):
    """One whole state from every rank's state, in rank order: {name: numpy array}.

    A moment whose shape differs from its parameter's is a slice: the N slices are joined, the padding
    is dropped, and the result takes the parameter's shape. Everything else is replicated and comes from
    rank 0; the layout entry is left out (the result is a whole checkpoint). ``names`` (one a state) name
    the files in errors. Raises ValueError when the slices cannot be the N ranks' slices of that parameter.
    """
    ranks = len(states)
    first = states[0]
    out = {}
    for name, value in first.items():
        if name == _sharding.LAYOUT_NAME:
            continue
        if not _is_slice(name, first):
            out[name] = np.asarray(value).copy()
            continue
        base = _base_name(name)
        shape = tuple(first[base].shape)
        size = int(np.prod(shape, dtype=np.int64))
        pieces = []
        for rank, state in enumerate(states):
            piece = np.asarray(state.get(name)) if name in state else None
            if piece is None or piece.ndim != 1 or piece.size != _sharding.slice_length(size, ranks):
                got = "missing" if piece is None else f"of shape {piece.shape}"
                where = f"'{names[rank]}'" if names else f"rank {rank}'s checkpoint"
                k = _sharding.slice_length(size, ranks)
                raise ValueError(f"'{name}' in {where} is {got}, but a slice of the parameter '{base}' {shape} "
                                 f"over {ranks} ranks has {k} elements ({ranks} checkpoints were passed).")
            pieces.append(piece)
        out[name] = np.concatenate(pieces)[:size].reshape(shape)
    return out


def looks_sliced(name, saved, parameter_dict):
    """True when a checkpoint entry is one rank's slice of a moment (1-D and shorter than its parameter)."""
    base = _base_name(name)
    if base is None or base not in parameter_dict:
        return False
    whole = parameter_dict[base]
    return len(saved.shape) == 1 and tuple(saved.shape) != tuple(whole.shape) and \
        int(saved.shape[0]) < int(whole.size)


MERGE_HINT = ("To load one rank's slices of the moments and masters (saved with shard_state=True) anywhere else, "
              "merge every rank's file of that save into one with `python -m mindspore_offload.checkpoint merge "
              "MERGED.ckpt RANK0.ckpt RANK1.ckpt ...` (any order: each file records its rank) and load "
              "MERGED.ckpt; load_param_into_net_checked cuts it to any number of sharded ranks.")


def _output(out, fmt):
    """(path, format) for the merged file, or ValueError when MindSpore could not load it under that name."""
    path = os.fspath(out)
    if fmt is None:
        fmt = next((f for f in _FORMATS if path.endswith("." + f)), None)
        if fmt is None:
            raise ValueError(f"The output '{path}' must end in '.ckpt' or '.safetensors' (the format it is written "
                             "in): MindSpore loads a checkpoint only under a name that ends in its format.")
    if fmt not in _FORMATS:
        raise ValueError(f"The format must be 'ckpt' or 'safetensors', but got {fmt!r}.")
    if not path.endswith("." + fmt):
        raise ValueError(f"The output '{path}' must end in '.{fmt}' to be written in the '{fmt}' format: MindSpore "
                         "loads a checkpoint only under a name that ends in its format.")
    return path, fmt


_PROG = "python -m mindspore_offload.checkpoint"


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line on stderr and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (usage: {_PROG} merge [--format FORMAT] OUT IN [IN ...]; "
                     "see --help)\n")


def _parser():
    parser = _Parser(prog=_PROG, usage=f"{_PROG} merge [-h] [--format {{ckpt,safetensors}}] OUT IN [IN ...]",
                     description="Checkpoint tools of mindspore-offload. merge: see merge --help.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    merge = commands.add_parser(
        "merge", prog=f"{_PROG} merge",
        help="join the rank files of one shard_state=True save into one whole checkpoint",
        description="Joins every rank's checkpoint of one save of a shard_state=True run into one whole "
                    "checkpoint, which unsharded runs, nn.AdamOffload and sharded runs with any number of ranks "
                    "load. Each file records its rank, so they may be given in any order; files that are not "
                    "every rank's file of one save are refused and nothing is written.")
    merge.add_argument("out", metavar="OUT", help="the merged checkpoint to write, exactly this name, ending in "
                                                  ".ckpt or .safetensors (the format it is written in)")
    merge.add_argument("inputs", metavar="IN", nargs="+", help="every rank's checkpoint of the save (.ckpt or "
                                                               ".safetensors), in any order")
    merge.add_argument("--format", choices=_FORMATS, help="the output's format; it must agree with OUT's "
                                                          "extension (default: the extension's)")
    return parser


def _main(argv):
    """The command line; returns the exit status (2 on any error, reported as one line on stderr)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as done:  # --help (0) or a usage error (2, already reported)
        return done.code
    try:
        merge_sharded_checkpoints(args.inputs, out=args.out, format=args.format)
    except (ValueError, OSError) as error:
        message = " ".join(str(error).split())
        print(f"{_PROG} merge: error: {message}", file=sys.stderr)
        return 2
    print(f"merged {len(args.inputs)} rank checkpoints into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
