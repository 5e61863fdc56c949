"""All-or-nothing checkpoint loading.

MindSpore 2.10's ``load_param_into_net`` is not atomic: a missing moment is skipped silently (even with
``strict_load=True``) and a mis-shaped one raises only after every parameter before it has been
overwritten. This checks the whole checkpoint against the cell first and loads only when it all fits.

Sharded optimizer state (``AdamOffload(..., shard_state=True)``): each rank saves its own slices of the
moments; :func:`merge_sharded_checkpoints` (or ``python -m mindspore_offload.checkpoint merge OUT IN0 IN1
...``) joins the per-rank files into one whole checkpoint, which unsharded runs, ``nn.AdamOffload`` and
sharded runs with any number of ranks load (the loader cuts each rank's slices from it).
"""
import os
import sys

__all__ = ["load_param_into_net_checked", "merge_sharded_checkpoints"]


def load_param_into_net_checked(net, parameter_dict, strict=True):
    """Loads a checkpoint into ``net`` (a network or a train cell with its optimizer) all or nothing.

    Args:
        net (Cell): the cell to load into, e.g. ``nn.TrainOneStepCell(..., AdamOffload(...))``.
        parameter_dict (Union[dict, str]): what ``mindspore.load_checkpoint`` returns, or a checkpoint path.
        strict (bool): every parameter of ``net`` must be in the checkpoint. With False, parameters the
            checkpoint lacks keep their values; those it has must still match. Default: ``True``.

    Returns:
        tuple, ``mindspore.load_param_into_net``'s (param_not_load, ckpt_not_load).

    Raises:
        ValueError: a parameter is missing (with ``strict``), or its shape or dtype differs from the
            checkpoint's. Nothing in ``net`` has changed when it is raised; the message lists every problem.

    With a sharded ``AdamOffload`` in ``net``, whole moments in the checkpoint are cut to this rank's
    slices. A checkpoint of one rank's slices loads only into the same slice layout; anywhere else it is
    refused with the command that merges the per-rank files.
    """
    import mindspore as ms

    from mindspore_offload import _sharding

    if isinstance(parameter_dict, (str, os.PathLike)):
        parameter_dict = ms.load_checkpoint(os.fspath(parameter_dict))
    parameter_dict = dict(parameter_dict)  # slices replace whole moments below; the caller's dict stays
    layout = _sharding.sliced_moments(net)
    missing, mismatched, sliced = [], [], []
    for param in net.get_parameters():
        saved = parameter_dict.get(param.name)
        if saved is None:
            if strict:
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
        raise ValueError("The checkpoint does not fit the network; nothing was loaded. " + "; ".join(problems) +
                         ". Load a checkpoint saved from the same network and optimizer (pass strict=False to "
                         "keep parameters the checkpoint lacks).")
    return ms.load_param_into_net(net, parameter_dict, strict_load=True)


def merge_sharded_checkpoints(checkpoints, out=None):
    """Joins the per-rank checkpoints of a sharded ``AdamOffload`` run into one whole checkpoint.

    Args:
        checkpoints (list[Union[str, dict]]): every rank's checkpoint of the same save (paths, or what
            ``mindspore.load_checkpoint`` returns), in rank order: rank 0 first.
        out (str): where to write the merged checkpoint; nothing is written when None. Default: ``None``.

    Returns:
        dict, {name: numpy.ndarray}: every moment whole (the parameter's shape), the rest from rank 0.

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
    if out is not None:
        ms.save_checkpoint([{"name": name, "data": ms.Tensor(value)} for name, value in merged.items()],
                           os.fspath(out))
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
