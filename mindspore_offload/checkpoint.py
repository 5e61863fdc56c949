"""All-or-nothing checkpoint loading.

MindSpore 2.10's ``load_param_into_net`` is not atomic: a missing moment is skipped silently (even with
``strict_load=True``) and a mis-shaped one raises only after every parameter before it has been
overwritten. This checks the whole checkpoint against the cell first and loads only when it all fits.

Sharded optimizer state (``AdamOffload(..., shard_state=True)``): each rank saves its own slices of the
moments (and of the float32 masters of 16-bit parameters); :func:`merge_sharded_checkpoints` (or ``python -m mindspore_offload.checkpoint merge OUT IN0 IN1
...``) joins the per-rank files into one whole checkpoint, which unsharded runs, ``nn.AdamOffload`` and
sharded runs with any number of ranks load (the loader cuts each rank's slices from it).

Paths are read in the format their name ends with (``.safetensors``, else ``.ckpt``), as MindSpore
requires.
"""
import os
import sys

__all__ = ["load_param_into_net_checked", "load_float32_checkpoint", "merge_sharded_checkpoints"]


def _format_of(path):
    """The format MindSpore reads ``path`` in: it accepts a file only in the format its name ends with."""
    return "safetensors" if os.fspath(path).endswith("safetensors") else "ckpt"


def _read(path):
    import mindspore as ms

    return ms.load_checkpoint(os.fspath(path), format=_format_of(path))


def _masters(net):
    """{master name: its 16-bit parameter's name} for every AdamOffload inside ``net`` (found by object,
    so a cell that prefixes names still gets its masters recognised)."""
    pairs = {}
    for _, cell in net.cells_and_names():
        if getattr(cell, "has_master", False):
            for param, master, sixteen in zip(cell._parameters, cell.masters, cell.sixteen_bit):
                if sixteen:
                    pairs[master.name] = param.name
    return pairs


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
            shape or dtype differs from the checkpoint's. Nothing in ``net`` has changed when it is raised;
            the message lists every problem.

    16-bit parameters: with ``strict=False``, a float16/bfloat16 parameter the checkpoint lacks while it
    holds the parameter's master (``master.<name>``) is set to that master rounded to nearest even, as
    the host pass rounds: the loaded master wins, so the parameter stays the master rounded. (A master
    that is one rank's slice cannot give the whole parameter: that is refused.)

    With a sharded ``AdamOffload`` in ``net``, whole moments in the checkpoint are cut to this rank's
    slices. A checkpoint of one rank's slices loads only into the same slice layout; anywhere else it is
    refused with the command that merges the per-rank files.
    """
    import mindspore as ms

    from mindspore_offload import _mixed, _sharding

    if isinstance(parameter_dict, (str, os.PathLike)):
        parameter_dict = _read(parameter_dict)
    masters = _masters(net)
    parameter_dict = dict(parameter_dict)  # slices replace whole moments below; the caller's dict stays
    layout = _sharding.sliced_moments(net)
    params = {param.name: param for param in net.get_parameters()}
    missing, mismatched, sliced = [], [], []
    if not strict:
        mismatched += _round_masters(masters, params, parameter_dict, _mixed.round_to)
    for param in params.values():
        saved = parameter_dict.get(param.name)
        if saved is None:
            # A master is never optional beside its parameter: the 16-bit value alone cannot restore it.
            if strict or masters.get(param.name) in parameter_dict:
                missing.append(param.name)
        elif param.name in layout and tuple(saved.shape) == layout[param.name][0] and saved.dtype == param.dtype:
            piece = _sharding.slice_of(saved.asnumpy(), *layout[param.name][1:])
            parameter_dict[param.name] = ms.Parameter(ms.Tensor(piece), name=param.name)
        elif tuple(saved.shape) != tuple(param.shape) and _sharding.looks_sliced(param.name, saved, parameter_dict):
            sliced.append(param.name)
        elif tuple(saved.shape) != tuple(param.shape) or saved.dtype != param.dtype:
            mismatched.append(f"'{param.name}' is {tuple(saved.shape)} {saved.dtype} in the checkpoint but "
                              f"{tuple(param.shape)} {param.dtype} in the network")
    if sliced:
        raise ValueError(f"The checkpoint does not fit the network; nothing was loaded. {sliced} are slices "
                         f"of a different layout than this network's. " + _sharding.MERGE_HINT)
    if missing or mismatched:
        problems = ([f"missing from the checkpoint: {missing}"] if missing else []) + mismatched
        if any(name in masters for name in missing):
            problems.append("the float32 master weights of a 16-bit parameter cannot be rebuilt from the 16-bit "
                            "parameter; to start from a float32 checkpoint use load_float32_checkpoint")
        raise ValueError("The checkpoint does not fit the network; nothing was loaded. " + "; ".join(problems) +
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

    from mindspore_offload import _mixed

    if isinstance(parameter_dict, (str, os.PathLike)):
        parameter_dict = _read(parameter_dict)
    converted = dict(parameter_dict)
    params = {param.name: param for param in net.get_parameters()}
    for master, name in _masters(net).items():
        saved = parameter_dict.get(name)
        if saved is None or saved.dtype != ms.float32:
            continue  # left for the checked load to report (or to take, if it is 16-bit already)
        value = saved.asnumpy()
        converted[master] = ms.Parameter(ms.Tensor(value), name=master)
        converted[name] = ms.Parameter(_mixed.round_to(value, params[name].dtype), name=name)
    return load_param_into_net_checked(net, converted, strict=strict)


def merge_sharded_checkpoints(checkpoints, out=None):
    """Joins the per-rank checkpoints of a sharded ``AdamOffload`` run into one whole checkpoint.

    Args:
        checkpoints (list[Union[str, dict]]): every rank's checkpoint of the same save (paths, or what
            ``mindspore.load_checkpoint`` returns), in rank order: rank 0 first.
        out (str): where to write the merged checkpoint (with ``mindspore_offload.save_checkpoint``, so a
            crash leaves an existing file whole); nothing is written when None. Default: ``None``.

    Returns:
        dict, {name: numpy.ndarray}: every moment and master whole (the parameter's shape), the rest from
        rank 0.

    Raises:
        ValueError: the files are not all the ranks' files of one sharded save.
    """
    import mindspore as ms

    from mindspore_offload import _sharding

    if not checkpoints:
        raise ValueError("For 'merge_sharded_checkpoints', pass every rank's checkpoint, rank 0 first; got none.")
    states = []
    for item in checkpoints:
        state = ms.load_checkpoint(os.fspath(item)) if isinstance(item, (str, os.PathLike)) else item
        states.append({name: value.asnumpy() if hasattr(value, "asnumpy") else value for name, value in state.items()})
    merged = _sharding.merge(states)
    if out is not None:  # crash-safe: an existing merged file is replaced whole or left as it was
        from mindspore_offload.safe_save import save_checkpoint

        save_checkpoint([{"name": name, "data": ms.Tensor(value)} for name, value in merged.items()], os.fspath(out))
    return merged


def _main(argv):
    usage = "usage: python -m mindspore_offload.checkpoint merge MERGED.ckpt RANK0.ckpt RANK1.ckpt ..."
    if len(argv) < 3 or argv[0] != "merge":
        print(usage, file=sys.stderr)
        return 2
    merge_sharded_checkpoints(argv[2:], out=argv[1])
    print(f"merged {len(argv) - 2} rank checkpoints into {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
