"""Optimizer-state sharding for data-parallel training (``AdamOffload(..., shard_state=True)``): the layout.

With N data-parallel ranks every rank would otherwise hold the whole of every parameter's moments. Here
each rank keeps one flat slice of ``ceil(size / N)`` elements of ``moment1`` and ``moment2`` (rank r owns
elements ``[r*k, (r+1)*k)`` of the flattened parameter, the last slice zero-padded past the end), runs the
host kernel on the same slice of the already all-reduced gradient, and ``ops.AllGather`` collects the N
slices of the update on every rank (_steps.py has the graph). The kernel is element-wise, so each element
gets the bits it would get unsharded. A float16/bfloat16 parameter keeps slices of its float32 master too.

This module holds what a rank's layout is and the arithmetic of the slices; nothing here builds graph
code or reads checkpoints (checkpoint.py merges and cuts them, from the layout each records).
"""
import math
from typing import NamedTuple

import numpy as np

import mindspore as ms
from mindspore import Parameter, ParameterTuple, Tensor
from mindspore.common import dtype as mstype
from mindspore.common.initializer import initializer

from mindspore_offload import _env

# Parameters with fewer elements keep whole, replicated moments. benchmarks/bench_shard.py (2 ranks, CPU
# backend, 2 shared vCPUs; docs/performance.md) found each AllGather to cost about the same few ms from 256
# to 16384 elements and to grow with size only from there: below 2^16 a gather buys at most 256 KiB a rank
# for a fixed latency. MINDSPORE_OFFLOAD_SHARD_MIN_SIZE overrides it.
SHARD_MIN_SIZE = 65536


def min_size():
    """The smallest parameter (in elements) whose moments are sliced."""
    value = _env.shard_min_size()
    return SHARD_MIN_SIZE if value is None else value


class Layout(NamedTuple):
    """Where this rank stands: its rank, the number of ranks, and the smallest parameter to slice."""

    rank: int
    ranks: int
    min_size: int

    def sliced(self, size):
        """Whether a parameter of ``size`` elements gets a slice of the moments (else whole ones)."""
        return is_sharded(size, self.ranks, self.min_size)

    def described(self):
        return f"rank {self.rank} of {self.ranks} (threshold {self.min_size} elements)"


def layout(shard_state, cls_name):
    """The Layout when sharding applies, None when it is off or a no-op.

    It applies in DATA_PARALLEL with more than one rank. Stand-alone or a single rank: a no-op, so one
    script runs both with and without msrun. The other parallel modes (semi-auto, auto, hybrid) split or
    place the parameters themselves, and a flat slice of a gradient there would not be the whole
    gradient's: they are refused.
    """
    if not shard_state:
        return None
    mode = ms.get_auto_parallel_context("parallel_mode")
    if mode == ms.ParallelMode.STAND_ALONE:
        return None
    if mode != ms.ParallelMode.DATA_PARALLEL:
        raise ValueError(f"For '{cls_name}', 'shard_state=True' works only in the DATA_PARALLEL parallel mode "
                         f"(or stand-alone, where it does nothing), but the parallel mode is '{mode}'. "
                         "Set ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL) or "
                         "pass shard_state=False.")
    from mindspore.communication import get_group_size, get_rank

    ranks = get_group_size()
    if ranks < 2:
        return None
    return Layout(get_rank(), ranks, min_size())


def is_sliced(param, shard):
    """Whether this rank keeps a slice of ``param``'s state, given its Layout ``shard`` (None: not sharding)."""
    return shard is not None and shard.sliced(param.size)


def slice_length(size, group_size):
    return math.ceil(size / group_size)


def is_sharded(size, group_size, threshold):
    # A slice must be shorter than its parameter: that is how a checkpoint shows a slice from a whole moment.
    return group_size > 1 and size >= max(threshold, 2)


def moments(params, shard, prefixes=("moment1", "moment2")):
    """(moment1, moment2) for the optimizer's parameters, given its Layout (None: not sharding).

    Sharded, each parameter large enough gets a zero slice of ceil(size/N) elements, the rest a whole
    zero moment of the parameter's shape. Either way the names are Parameter.clone's (``<prefix>.<name>``:
    ``moment1``/``moment2`` for AdamOffload, ``adam_m``/``adam_v`` for AdamWeightDecayOffload), so the
    checkpoint names stay MindSpore's. A slice is ``layerwise_parallel``: every rank holds its
    own, and MindSpore's parameter broadcast (``parameter_broadcast=True``), which copies rank 0's value
    of every other Parameter to all ranks when a graph compiles, must leave it alone.
    """
    if shard is None:
        return tuple(params.clone(prefix=prefix, init="zeros") for prefix in prefixes)
    out = []
    for prefix in prefixes:
        state = []
        for param in params:
            sliced = shard.sliced(param.size)
            shape = (slice_length(param.size, shard.ranks),) if sliced else param.shape
            state.append(Parameter(initializer("zeros", shape, mstype.float32), name=f"{prefix}.{param.name}",
                                   layerwise_parallel=sliced))
        out.append(ParameterTuple(state))
    return tuple(out)


def leftover_from(size, k, rank):
    """Where the whole tensor's last size mod 8 elements fall in ``rank``'s slice of k (k: not in it).
    They are rounded as MindSpore rounds its leftovers; telling the kernel where they fall makes the
    slices give the whole tensor's bits."""
    return min(max(size - size % 8 - rank * k, 0), k)


def slice_of(whole, rank, ranks):
    """This rank's zero-padded flat slice of a whole moment (a numpy array)."""
    flat = np.asarray(whole, dtype=np.float32).reshape(-1)
    k = slice_length(flat.size, ranks)
    out = np.zeros(k, dtype=np.float32)
    piece = flat[rank * k:(rank + 1) * k]
    out[:piece.size] = piece
    return out


# Where a sharded optimizer saves [rank, ranks, min_size]. Each sliced parameter's slice length needs no
# record: it is the shape of its saved moments.
LAYOUT_NAME = "shard_layout"


def layout_parameter(shard):
    """The Parameter that records ``shard`` (a Layout) in a sharded optimizer's checkpoints: int64
    [rank, ranks, min_size]. The step never reads it. It is not trainable, and layerwise_parallel keeps
    MindSpore's parameter broadcast (which copies rank 0's parameters to every rank) away from it."""
    return Parameter(Tensor(np.array(shard, np.int64)), name=LAYOUT_NAME, requires_grad=False,
                     layerwise_parallel=True)


def recorded_layout(state, source):
    """The Layout a checkpoint's entries (``state``, a dict) record, or None when they record none.
    ``source`` names the checkpoint in the error raised when the entry is not a layout."""
    value = state.get(LAYOUT_NAME)
    if value is None:
        return None
    value = np.asarray(value.asnumpy() if hasattr(value, "asnumpy") else value)
    if value.shape != (3,) or value.dtype.kind not in "iu" or not 0 <= value[0] < value[1] or value[2] < 0:
        raise ValueError(f"{source} has a '{LAYOUT_NAME}' entry of {value.tolist()} ({value.dtype}), which is not "
                         "a layout [rank, ranks, threshold] as a sharded AdamOffload saves it.")
    return Layout(*(int(x) for x in value))
