"""Optimizer-state sharding for data-parallel training (``AdamOffload(..., shard_state=True)``).

With N data-parallel ranks every rank would otherwise hold the whole of every parameter's moments. Here
each rank keeps one flat slice of ``ceil(size / N)`` elements of ``moment1`` and ``moment2`` (rank r owns
elements ``[r*k, (r+1)*k)`` of the flattened parameter, the last slice zero-padded past the end), runs the
host kernel on the same slice of the already all-reduced gradient, and ``ops.AllGather`` collects the N
delta slices, which every rank trims, reshapes and adds to its own copy of the parameter. The kernel is
element-wise, so each element gets the bits it would get unsharded. A float16/bfloat16 parameter keeps
slices of its float32 master too, and the ranks gather the slices of its new 16-bit value
(``master_step``).

Only MindSpore's world group and its own collectives are used; every rank builds the same graph (only
the slice offset, a constant, differs), so the collectives always match.
"""
import math
from typing import NamedTuple

import numpy as np

import mindspore as ms
from mindspore import Parameter, ParameterTuple, Tensor, ops
from mindspore.common import dtype as mstype
from mindspore.common.initializer import initializer
from mindspore.ops import composite as C
from mindspore.ops import functional as F

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


# This process's place in the world group and its gather, set by layout(). The step reads them as
# compile-time constants: every step kind takes the same arguments, and MindSpore 2.10 does not compile the
# step when they arrive as attributes of a Cell passed in instead ("pointer[out] is null" in its inliner).
# A process belongs to one world group only.
_RANK = 0
_RANKS = 1
_GATHER = None


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
    global _RANK, _RANKS, _GATHER
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
    _RANK, _RANKS = get_rank(), ranks
    if _GATHER is None:
        _GATHER = ops.AllGather()
    return Layout(_RANK, _RANKS, min_size())


def slice_length(size, group_size):
    return math.ceil(size / group_size)


def is_sharded(size, group_size, threshold):
    # A slice must be shorter than its parameter: that is how a checkpoint shows a slice from a whole moment.
    return group_size > 1 and size >= max(threshold, 2)


def moments(params, shard):
    """(moment1, moment2) for the optimizer's parameters, given its Layout (None: not sharding).

    Sharded, each parameter large enough gets a zero slice of ceil(size/N) elements, the rest a whole
    zero moment of the parameter's shape. Either way the names are Parameter.clone's (``moment1.<name>``),
    so the checkpoint names stay nn.AdamOffload's.
    """
    if shard is None:
        return params.clone(prefix="moment1", init="zeros"), params.clone(prefix="moment2", init="zeros")
    out = []
    for prefix in ("moment1", "moment2"):
        state = []
        for param in params:
            shape = (slice_length(param.size, shard.ranks),) if shard.sliced(param.size) else param.shape
            state.append(Parameter(initializer("zeros", shape, mstype.float32), name=f"{prefix}.{param.name}"))
        out.append(ParameterTuple(state))
    return tuple(out)


def leftover_from(size, k, rank):
    """Where the whole tensor's last size mod 8 elements fall in ``rank``'s slice of k (k: not in it).
    They are rounded as MindSpore rounds its leftovers; telling the kernel where they fall makes the
    slices give the whole tensor's bits."""
    return min(max(size - size % 8 - rank * k, 0), k)


def _leftover_from(size, k):
    return leftover_from(size, k, _RANK)


def _this_ranks_slice(gradient, k):
    """This rank's flat slice of ``gradient``: k elements, zero-padded past the end."""
    size = gradient.size
    start = _RANK * k
    piece = gradient.reshape((-1,))
    # Pad the whole gradient, not just the slice that runs past the end: every rank must build the same
    # graph, or the collectives of different parameters can run in a different order on each.
    if _RANKS * k > size:  # shapes are constants: decided at compile time
        piece = ops.concat((piece, ops.zeros((_RANKS * k - size,), gradient.dtype)))
    return piece[start:start + k]


step = C.MultitypeFuncGraph("mindspore_offload_sharded_step")


@step.register("Function", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor",
               "Tensor")
def _sharded_step(host_adam, beta1_power, beta2_power, beta1, beta2, eps, lr, gradient, param, moment1, moment2):
    """Step kind "sliced": the whole delta, computed a slice a rank. The host op (the "Slice" entry point)
    runs on this rank's slice of the gradient and moments; the gather rebuilds the whole delta on every
    rank, and the graph adds it to the parameter."""
    k = moment1.shape[0]
    leftover_from = ops.scalar_to_tensor(_leftover_from(gradient.size, k), mstype.int64)
    piece = host_adam(leftover_from, moment1, moment2, beta1_power, beta2_power, lr, beta1, beta2, eps,
                      _this_ranks_slice(gradient, k))
    delta = _GATHER(piece)[:gradient.size].reshape(gradient.shape)
    return F.depend(True, F.assign_add(param, delta))


# A 16-bit parameter's step with sliced master and moments (_mixed.py): its arguments are _mixed._update's.
# _PUT: the custom op that copies the gathered 16-bit slices into a parameter in host memory (set by
# _mixed.attach; MindSpore's CPU backend has no bfloat16 Assign).
_PUT = None
master_step = C.MultitypeFuncGraph("mindspore_offload_sharded_master_step")


@master_step.register("Bool", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor",
                      "Function", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor")
def _sharded_master_step(apply, beta1_power, beta2_power, beta1, beta2, eps, grad_scale, lr, weight_decay, host_adam,
                         gradient, param, moment1, moment2, master):
    """This rank's slice of the master and moments, updated from its slice of the 16-bit gradient (the
    "MasterSlice" entry point), gives this rank's slice of the new 16-bit parameter; the gather collects
    the N slices (2 bytes an element: half what the float32 path gathers) on every rank.

    With ``apply`` (the CPU backend: the gradient is host memory already) the op is given the whole
    gradient and where this rank's slice starts in it, since the CPU backend slices no bfloat16; it
    returns the bits as int16, which MindSpore's CPU AllGather takes where it does not take bfloat16, and
    _PUT writes them into the parameter. Otherwise (a device backend) the slice is cut on the device, so
    only it crosses to the host, and the gathered 16-bit value is assigned on the device."""
    k = master.shape[0]
    start = _RANK * k if apply else 0
    lead = ops.stack((ops.scalar_to_tensor(_leftover_from(gradient.size, k), mstype.int64),
                      ops.scalar_to_tensor(start, mstype.int64)))
    # The pass reads the parameter's slice too (a write since the last step restarts the master there);
    # it is cut as the gradient is.
    piece = gradient if apply else _this_ranks_slice(gradient, k)
    current = param if apply else _this_ranks_slice(param, k)
    new = host_adam(lead, current, master, moment1, moment2, beta1_power, beta2_power, lr, beta1, beta2, eps,
                    weight_decay, grad_scale, piece)
    gathered = _GATHER(new)
    if apply:
        return F.depend(True, _PUT(param, gathered))
    return F.depend(True, F.assign(param, gathered[:gradient.size].reshape(gradient.shape)))


# Checkpoints. A sharded rank saves its own slices under the usual names, and its Layout under
# LAYOUT_NAME; in_rank_order() and merge() turn the N per-rank files into one whole checkpoint (the format
# of an unsharded run and of nn.AdamOffload, without LAYOUT_NAME), and
# checkpoint.load_param_into_net_checked checks a file's Layout against this run's and cuts a whole
# checkpoint's moments to this rank's slices (sliced_moments, slice_of) while loading it.

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


def layout_in(net):
    """The Layout of the sharded AdamOffload in ``net`` (every one in a process has the same), or None."""
    from mindspore_offload.optimizer import AdamOffload

    for _, cell in net.cells_and_names():
        if isinstance(cell, AdamOffload) and cell.shard is not None:
            return cell.shard
    return None

# A sliced 16-bit parameter's master is cut, saved and merged like its moments.
_MOMENT_PREFIXES = ("moment1.", "moment2.", "master.")


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
    layouts = [recorded_layout(state, f"'{name}'") for state, name in zip(states, names)]
    for name, layout in zip(names, layouts):
        if layout is None:
            raise ValueError(f"'{name}' records no shard layout ('{LAYOUT_NAME}'): it is not one rank's checkpoint "
                             "of a shard_state=True run (a whole checkpoint needs no merge), or it was saved before "
                             "the layout was recorded.")
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
            if key == LAYOUT_NAME or _is_slice(key, first):
                continue
            mine, theirs = np.asarray(state[key]), np.asarray(first[key])
            if mine.dtype != theirs.dtype or mine.shape != theirs.shape or mine.tobytes() != theirs.tobytes():
                raise ValueError(f"'{name}' is not from the same save as '{first_name}': '{key}' differs"
                                 f"{_values(mine, theirs)}, and every rank of one save holds the same.")
    return [states[index] for index in ordered]


def merge(states, names=None):
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
        if name == LAYOUT_NAME:
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
            if piece is None or piece.ndim != 1 or piece.size != slice_length(size, ranks):
                got = "missing" if piece is None else f"of shape {piece.shape}"
                where = f"'{names[rank]}'" if names else f"rank {rank}'s checkpoint"
                raise ValueError(f"'{name}' in {where} is {got}, but a slice of the parameter '{base}' {shape} "
                                 f"over {ranks} ranks has {slice_length(size, ranks)} elements ({ranks} checkpoints "
                                 "were passed).")
            pieces.append(piece)
        out[name] = np.concatenate(pieces)[:size].reshape(shape)
    return out


def slice_of(whole, rank, ranks):
    """This rank's zero-padded flat slice of a whole moment (a numpy array)."""
    flat = np.asarray(whole, dtype=np.float32).reshape(-1)
    k = slice_length(flat.size, ranks)
    out = np.zeros(k, dtype=np.float32)
    piece = flat[rank * k:(rank + 1) * k]
    out[:piece.size] = piece
    return out


def sliced_moments(net):
    """{moment or master name: (whole shape, rank, ranks)} for every sliced moment and master of a sharded
    AdamOffload in net."""
    from mindspore_offload.optimizer import AdamOffload

    layout = {}
    for _, cell in net.cells_and_names():
        if not isinstance(cell, AdamOffload) or cell.shard is None:
            continue
        masters = getattr(cell, "masters", cell.moment1)  # a float32 parameter's slot repeats its moment1
        for param, moment1, moment2, master in zip(cell._parameters, cell.moment1, cell.moment2, masters):
            if cell.shard.sliced(param.size):
                for moment in (moment1, moment2, master):
                    layout[moment.name] = (tuple(param.shape), cell.shard.rank, cell.shard.ranks)
    return layout


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
