"""mindspore-offload: a maintained, faster drop-in replacement for MindSpore's nn.AdamOffload.

    from mindspore_offload import AdamOffload      # was: nn.AdamOffload

The optimizer needs MindSpore and is imported on first use, so `mindspore_offload.kernel` (the host
kernel alone) works without it.
"""
import importlib

from mindspore_offload._version import __version__

__all__ = ["AdamOffload", "load_param_into_net_checked", "merge_sharded_checkpoints", "kernel", "__version__"]


def __getattr__(name):
    if name == "AdamOffload":
        from mindspore_offload.optimizer import AdamOffload

        return AdamOffload
    if name == "load_param_into_net_checked":
        from mindspore_offload.checkpoint import load_param_into_net_checked

        return load_param_into_net_checked
    if name == "merge_sharded_checkpoints":
        from mindspore_offload.checkpoint import merge_sharded_checkpoints

        return merge_sharded_checkpoints
    if name == "kernel":
        return importlib.import_module("mindspore_offload.kernel")
    raise AttributeError(f"module 'mindspore_offload' has no attribute '{name}'")
