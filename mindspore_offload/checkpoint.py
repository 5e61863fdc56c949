"""All-or-nothing checkpoint loading.

MindSpore 2.10's ``load_param_into_net`` is not atomic: a missing moment is skipped silently (even with
``strict_load=True``) and a mis-shaped one raises only after every parameter before it has been
overwritten. This checks the whole checkpoint against the cell first and loads only when it all fits.
"""
import os

__all__ = ["load_param_into_net_checked"]


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
    """
    import mindspore as ms

    if isinstance(parameter_dict, (str, os.PathLike)):
        parameter_dict = ms.load_checkpoint(os.fspath(parameter_dict))
    missing, mismatched = [], []
    for param in net.get_parameters():
        saved = parameter_dict.get(param.name)
        if saved is None:
            if strict:
                missing.append(param.name)
        elif tuple(saved.shape) != tuple(param.shape) or saved.dtype != param.dtype:
            mismatched.append(f"'{param.name}' is {tuple(saved.shape)} {saved.dtype} in the checkpoint but "
                              f"{tuple(param.shape)} {param.dtype} in the network")
    if missing or mismatched:
        problems = ([f"missing from the checkpoint: {missing}"] if missing else []) + mismatched
        raise ValueError("The checkpoint does not fit the network; nothing was loaded. " + "; ".join(problems) +
                         ". Load a checkpoint saved from the same network and optimizer (pass strict=False to "
                         "keep parameters the checkpoint lacks).")
    return ms.load_param_into_net(net, parameter_dict, strict_load=True)
