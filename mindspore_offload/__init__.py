"""mindspore-offload: a maintained, faster drop-in replacement for MindSpore's nn.AdamOffload.

    from mindspore_offload import AdamOffload      # was: nn.AdamOffload

The optimizer needs MindSpore and is imported on first use, so `mindspore_offload.kernel` (the host
kernel alone) works without it.
"""
import importlib

from mindspore_offload._version import __version__

__all__ = ["AdamOffload", "load_param_into_net_checked", "load_float32_checkpoint", "kernel", "__version__"]


def __getattr__(name):
    if name == "AdamOffload":
        from mindspore_offload.optimizer import AdamOffload

        return AdamOffload
    if name in ("load_param_into_net_checked", "load_float32_checkpoint"):
        from mindspore_offload import checkpoint

        return getattr(checkpoint, name)
    if name == "kernel":
        return importlib.import_module("mindspore_offload.kernel")
    raise AttributeError(f"module 'mindspore_offload' has no attribute '{name}'")
