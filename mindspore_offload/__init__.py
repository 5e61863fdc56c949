"""mindspore-offload: a maintained, faster drop-in replacement for MindSpore's nn.AdamOffload.

    from mindspore_offload import AdamOffload      # was: nn.AdamOffload

Everything that needs MindSpore is imported on first use, so `mindspore_offload.kernel` (the host
kernel alone) works without it.
"""
import importlib

from mindspore_offload._version import __version__

# Public name -> the module that defines it, imported when the name is first asked for.
_LAZY = {
    "AdamOffload": "mindspore_offload.optimizer",
    "AdamWeightDecayOffload": "mindspore_offload.adamw",
    "load_param_into_net_checked": "mindspore_offload.checkpoint",
    "load_float32_checkpoint": "mindspore_offload.checkpoint",
    "merge_sharded_checkpoints": "mindspore_offload.checkpoint",
    "save_checkpoint": "mindspore_offload.safe_save",
    "LatestCheckpoint": "mindspore_offload.latest",
    "find_resume_checkpoint": "mindspore_offload.latest",
}

__all__ = list(_LAZY) + ["kernel", "__version__"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name == "kernel":
        return importlib.import_module("mindspore_offload.kernel")
    raise AttributeError(f"module 'mindspore_offload' has no attribute '{name}'")
