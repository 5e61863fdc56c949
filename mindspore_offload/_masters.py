"""float32 master weights for 16-bit parameters (docs/design.md#mixed-precision).

For a float16 or bfloat16 parameter ``w``, AdamOffload keeps three float32 tensors where its custom op
runs: ``master.<name>`` (the float32 weights, made from ``w`` at construction), ``moment1.<name>`` and
``moment2.<name>``. One host pass per step (the "master" rows of _steps.STEP_KINDS) widens the 16-bit
gradient, decays it with the master and unscales it (both in float32, as the float32 path does), updates
the moments and the master, and returns the master rounded to nearest even in ``w``'s dtype. The master
therefore follows the float32 path's trajectory bit for bit. The pass also reads ``w``: where someone
wrote it since the last step, the master restarts from the written value.

With ``shard_state=True`` over N data-parallel ranks, a 16-bit parameter of at least the shard threshold
keeps only this rank's flat slice of its master and moments (_sharding.py's layout).

This module makes that state and answers questions about it; the graph code is in _steps.py. Float32
parameters' slots in the masters tuple hold their own ``moment1`` Parameter as a placeholder that is never
read (a Parameter already in the optimizer, so it adds no state and no checkpoint entry).
"""
import numpy as np

import mindspore as ms
from mindspore import Parameter, ParameterTuple, Tensor
from mindspore.common import dtype as mstype

from mindspore_offload import _sharding

MASTER_PREFIX = "master"
WITH_MASTER = (mstype.float16, mstype.bfloat16)  # the dtypes whose parameters get a float32 master
SUPPORTED = (mstype.float32, mstype.float16, mstype.bfloat16)


def has_master(param):
    return param.dtype in WITH_MASTER


def master_name(param_name):
    return f"{MASTER_PREFIX}.{param_name}"


def _float32_zeros_like(param, name):
    return Parameter(Tensor(np.zeros(param.shape, np.float32)), name=name, requires_grad=False)


def host_state(params, moment1, moment2, shard=None):
    """The float32 host state: moments (``clone`` kept the 16-bit dtype, so those are remade in float32
    under the same names) and a master for every 16-bit parameter; with a sharding ``shard`` (a
    _sharding.Layout), a large parameter's moments stay this rank's float32 slices and its master is
    this rank's slice too. Returns three ParameterTuples."""
    m1, m2, masters = [], [], []
    for param, first, second in zip(params, moment1, moment2):
        if has_master(param):
            widened = param.asnumpy().astype(np.float32)  # exact for both 16-bit types
            if _sharding.is_sliced(param, shard):
                widened = _sharding.slice_of(widened, shard.rank, shard.ranks)
            else:
                first = _float32_zeros_like(param, first.name)
                second = _float32_zeros_like(param, second.name)
            # A slice is this rank's own: kept out of parameter broadcast, as _sharding.moments' slices.
            masters.append(Parameter(Tensor(widened), name=master_name(param.name), requires_grad=False,
                                     layerwise_parallel=_sharding.is_sliced(param, shard)))
        else:
            masters.append(first)  # placeholder, never read
        m1.append(first)
        m2.append(second)
    return ParameterTuple(m1), ParameterTuple(m2), ParameterTuple(masters)


def check_master_names(params, cls_name):
    """A master must not take the name of a parameter the optimizer was given."""
    names = {param.name for param in params}
    for param in params:
        if has_master(param) and master_name(param.name) in names:
            raise ValueError(f"For '{cls_name}', the master weights of the {param.dtype} parameter '{param.name}' "
                             f"are named '{master_name(param.name)}', which is already a parameter's name. "
                             "Rename that parameter.")


# Bytes per parameter element: (on the device, on the host, across per step). float32, device path:
# parameter + gradient + the delta sent back; host: moment1 + moment2; across: gradient down, delta up.
# 16-bit: parameter + gradient + the new parameter sent back; host: master + moment1 + moment2; across:
# gradient and parameter down (the pass compares the parameter with its master, so that a write since
# the last step is never undone), new parameter up.
# AdamW's float32 pass reads the parameter too (its decay needs it) and sends back its new value rather than a
# delta: 4 more bytes cross, down. Its 16-bit pass moves what Adam's does.
_BYTES = {"adam": {"float32": (12, 8, 8), "float16": (6, 12, 6), "bfloat16": (6, 12, 6)},
          "adamw": {"float32": (12, 8, 12), "float16": (6, 12, 6), "bfloat16": (6, 12, 6)}}


def memory_report(params, shard=None, rule="adam"):
    """What the parameters cost on the device and on the host, and what crosses each step; see
    AdamOffload.memory_report. ``shard``: the optimizer's _sharding.Layout, or None. A sliced parameter
    keeps only this rank's slice on the host, and only that slice's gradient and result cross. ``rule``:
    the optimizer's update rule ("adam" or "adamw")."""
    rows = {}
    for param in params:
        kind = str(param.dtype).lower()
        kind = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}[kind]
        count = int(np.prod(param.shape)) if len(param.shape) else 1
        on_host = _sharding.slice_length(count, shard.ranks) if _sharding.is_sliced(param, shard) else count
        device, host, across = _BYTES[rule][kind]
        row = rows.setdefault(kind, dict(elements=0, sharded_elements=0, device_bytes=0, host_bytes=0,
                                         bytes_across_per_step=0,
                                         per_element=dict(device=device, host=host, across=across)))
        row["elements"] += count
        row["sharded_elements"] += count if on_host != count else 0
        row["device_bytes"] += device * count
        row["host_bytes"] += host * on_host
        row["bytes_across_per_step"] += across * on_host
    total = {key: sum(row[key] for row in rows.values())
             for key in ("elements", "sharded_elements", "device_bytes", "host_bytes", "bytes_across_per_step")}
    return dict(by_dtype=rows, total=total)


def round_to(values, dtype):
    """float32 NumPy values rounded to nearest even in a 16-bit MindSpore dtype, as the host pass rounds
    (NumPy's float16 conversion for float16; integer code for bfloat16); returns a Tensor of ``dtype``."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    if dtype == mstype.float16:
        with np.errstate(over="ignore"):
            return Tensor(values.astype(np.float16))
    bits = values.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    rounded = np.where((bits & 0x7FFFFFFF) > 0x7F800000, ((bits >> 16) | 0x40).astype(np.uint16), rounded)
    from mindspore.common.np_dtype import bfloat16

    return Tensor(rounded.view(bfloat16))


def check_assignable(params, apply_on_host, cls_name):
    """On the CPU backend with MINDSPORE_OFFLOAD_HOST_APPLY=0 the graph would have to assign (and, sharded,
    gather) a bfloat16 parameter, which MindSpore's CPU backend cannot do: refuse it before the compile
    fails on it."""
    current = getattr(ms, "get_current_device", None)
    target = current()[0] if current is not None else ms.get_context("device_target")
    if apply_on_host or str(target).upper() != "CPU":
        return
    for param in params:
        if param.dtype == mstype.bfloat16:
            raise ValueError(f"For '{cls_name}', the bfloat16 parameter '{param.name}' cannot be updated on the CPU "
                             "backend with MINDSPORE_OFFLOAD_HOST_APPLY=0: MindSpore's CPU backend has no bfloat16 "
                             "Assign (nor AllGather) for the graph to write it with. Unset "
                             "MINDSPORE_OFFLOAD_HOST_APPLY (or set it to '1') so that the host pass writes the "
                             "parameter itself.")
