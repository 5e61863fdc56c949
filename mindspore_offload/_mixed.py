"""16-bit parameters with float32 master weights and moments on the host (docs/design.md#mixed-precision).

For a float16 or bfloat16 parameter ``w``, AdamOffload keeps three float32 tensors where its custom op
runs: ``master.<name>`` (the float32 weights, made from ``w`` at construction), ``moment1.<name>`` and
``moment2.<name>``. One host pass per step widens the 16-bit gradient, decays it with the master and
unscales it (both in float32, as the float32 path does), updates the moments and the master, and returns
the master rounded to nearest even in ``w``'s dtype; the graph assigns that to ``w`` on its device.
The master therefore follows the float32 path's trajectory bit for bit.

With ``shard_state=True`` over N data-parallel ranks, a 16-bit parameter of at least the shard threshold
keeps only this rank's flat slice of its master and moments (_sharding.py's layout) and its step is
``_sharding.master_step``: the host pass on the slice, then a gather of the 16-bit slices.

Float32 parameters of the same optimizer keep their own path untouched; in the tuples below their
master slot holds their own ``moment1`` Parameter as a placeholder that is never read (a Parameter
already in the optimizer, so it adds no state and no checkpoint entry).
"""
import numpy as np

import mindspore as ms
from mindspore import Parameter, ParameterTuple, Tensor, ops
from mindspore.common import dtype as mstype
from mindspore.ops import composite as C
from mindspore.ops import functional as F

from mindspore_offload import _sharding

MASTER_PREFIX = "master"
SIXTEEN_BIT = (mstype.float16, mstype.bfloat16)
SUPPORTED = (mstype.float32, mstype.float16, mstype.bfloat16)


def is_sixteen_bit(param):
    return param.dtype in SIXTEEN_BIT


def master_name(param_name):
    return f"{MASTER_PREFIX}.{param_name}"


def _float32_zeros_like(param, name):
    return Parameter(Tensor(np.zeros(param.shape, np.float32)), name=name, requires_grad=False)


def _sliced(param, shard):
    return shard is not None and shard.sliced(param.size)


def host_state(params, moment1, moment2, shard=None):
    """The float32 host state: moments (``clone`` kept the 16-bit dtype, so those are remade in float32
    under the same names) and a master for every 16-bit parameter; with a sharding ``shard`` (a
    _sharding.Layout), a large parameter's moments stay this rank's float32 slices and its master is
    this rank's slice too. Returns three ParameterTuples."""
    m1, m2, masters = [], [], []
    for param, first, second in zip(params, moment1, moment2):
        if is_sixteen_bit(param):
            widened = param.asnumpy().astype(np.float32)  # exact for both 16-bit types
            if _sliced(param, shard):
                widened = _sharding.slice_of(widened, shard.rank, shard.ranks)
            else:
                first = _float32_zeros_like(param, first.name)
                second = _float32_zeros_like(param, second.name)
            masters.append(Parameter(Tensor(widened), name=master_name(param.name), requires_grad=False))
        else:
            masters.append(first)  # placeholder, never read
        m1.append(first)
        m2.append(second)
    return ParameterTuple(m1), ParameterTuple(m2), ParameterTuple(masters)


def check_master_names(params, cls_name):
    """A master must not take the name of a parameter the optimizer was given."""
    names = {param.name for param in params}
    for param in params:
        if is_sixteen_bit(param) and master_name(param.name) in names:
            raise ValueError(f"For '{cls_name}', the master weights of the {param.dtype} parameter '{param.name}' "
                             f"are named '{master_name(param.name)}', which is already a parameter's name. "
                             "Rename that parameter.")


def master_step_flags(opt):
    """Per parameter: (16-bit?, decayed?). Takes the decay of 16-bit parameters out of the graph's
    decay_weight (it is done in float32 with the master, in the host pass)."""
    sixteen = tuple(is_sixteen_bit(param) for param in opt._parameters)
    decay = tuple(bool(opt.exec_weight_decay and flag) for flag in opt.decay_flags)
    opt.decay_flags = tuple(flag and not s for flag, s in zip(opt.decay_flags, sixteen))
    return sixteen, tuple(d and s for d, s in zip(decay, sixteen))


def _master_op(library, param, decay, unscale, use_nesterov, use_locking, apply, cls_name, sliced=False):
    """The host op of one 16-bit parameter (one per parameter, so compile-time errors can name it). With
    ``apply`` (the CPU backend) it writes the parameter in place and returns one float32. With ``sliced``
    it takes leftover_from first and this rank's slices, and returns the slice of the new parameter (its
    bits as int16 with ``apply``, for the gather; see _sharding.master_step)."""
    kind = "Slice" if sliced else "Apply" if apply else ""
    entry = ("AdamOffloadMaster" + kind + ("Nesterov" if use_nesterov else "") + ("Locked" if use_locking else "")
             + ("Decay" if decay else "") + ("Unscale" if unscale else ""))
    name, dtype, shape = param.name, param.dtype, tuple(param.shape)

    def out_shape(*shapes):
        if sliced:  # the master's slice (after the lead and the parameter); with apply the gradient is whole
            if apply and tuple(shapes[-1]) != shape:
                raise ValueError(f"For '{cls_name}', a gradient of shape {tuple(shapes[-1])} does not match its "
                                 f"parameter '{name}' of shape {shape}.")
            return shapes[2]
        if tuple(shapes[-1]) != shape:
            raise ValueError(f"For '{cls_name}', a gradient of shape {tuple(shapes[-1])} does not match its "
                             f"parameter '{name}' of shape {shape}.")
        return [1] if apply else shapes[-1]

    def out_dtype(*dtypes):
        gradient = dtypes[-1]
        while hasattr(gradient, "element_type"):
            gradient = gradient.element_type()
        if gradient != dtype:
            raise TypeError(f"For '{cls_name}', the gradient of the {dtype} parameter '{name}' must be {dtype}, "
                            f"but got {gradient}. Keep the gradient in the parameter's dtype (the host widens it "
                            "to float32 itself).")
        if sliced:
            return ms.int16 if apply else dtypes[-1]
        return ms.float32 if apply else dtypes[-1]

    op = ops.Custom(f"{library}:{entry}", out_shape=out_shape, out_dtype=out_dtype, func_type="aot")
    op.set_device("CPU")  # master, moments and the pass live on the host, whatever the network's device
    op.add_prim_attr("side_effect_mem", True)  # writes master, moment1, moment2 (and with apply the parameter)
    return op


def master_ops(opt, library, sixteen, decay, use_nesterov, use_locking):
    """Per parameter: its host op; a float32 parameter's slot repeats another op, never called."""
    ops_ = [_master_op(library, param, dec, opt.need_scale, use_nesterov, use_locking, opt.apply_on_host, opt.cls_name,
                       _sliced(param, opt.shard))
            if is16 else None
            for param, is16, dec in zip(opt._parameters, sixteen, decay)]
    placeholder = next(op for op in ops_ if op is not None)
    return tuple(placeholder if op is None else op for op in ops_)


def _update(apply, beta1_power, beta2_power, beta1, beta2, eps, grad_scale, lr, weight_decay, master_step, host_adam,
            gradient, param, moment1, moment2, master):
    """The parameter's ``master_step`` (one of MASTER_STEPS) with these arguments."""
    return master_step(apply, beta1_power, beta2_power, beta1, beta2, eps, grad_scale, lr, weight_decay, host_adam,
                       gradient, param, moment1, moment2, master)


_STEP_ARGS = ("Bool",) + ("Tensor",) * 8 + ("Function",) + ("Tensor",) * 5
_no_master = C.MultitypeFuncGraph("mindspore_offload_no_master")
_whole_master = C.MultitypeFuncGraph("mindspore_offload_whole_master")


@_no_master.register(*_STEP_ARGS)
def _(apply, beta1_power, beta2_power, beta1, beta2, eps, grad_scale, lr, weight_decay, host_adam, gradient, param,
      moment1, moment2, master):
    """A float32 parameter: nothing (its own step runs in the optimizer's main map)."""
    return True


@_whole_master.register(*_STEP_ARGS)
def _(apply, beta1_power, beta2_power, beta1, beta2, eps, grad_scale, lr, weight_decay, host_adam, gradient, param,
      moment1, moment2, master):
    """A 16-bit parameter: the host pass, then the new 16-bit value assigned where the parameter lives
    (with ``apply``, the parameter is host memory and the pass writes it). The pass reads the parameter
    either way: an element written since the last step restarts its master from the written value."""
    new = host_adam(param, master, moment1, moment2, beta1_power, beta2_power, lr, beta1, beta2, eps, weight_decay,
                    grad_scale, gradient)
    if apply:
        return F.depend(True, new)
    return F.depend(True, F.assign(param, new))


def master_steps(opt):
    """Per parameter, its graph function: none for float32, the whole pass, or the sliced one."""
    return tuple(_no_master if not sixteen else _sharding.master_step if _sliced(param, opt.shard) else _whole_master
                 for param, sixteen in zip(opt._parameters, opt.sixteen_bit))


_ARGS = ("Bool",) + ("Tensor",) * 8 + ("Function", "Function") + ("Tensor",) * 5
# Learning rate and weight decay either bound for every parameter or mapped with the parameters; a
# partial can only bind leading arguments, so a second order serves "decay bound, rate mapped".
_master_update = C.MultitypeFuncGraph("mindspore_offload_master_update")
_master_update.register(*_ARGS)(_update)
_master_update_decay_first = C.MultitypeFuncGraph("mindspore_offload_master_update_decay_first")


@_master_update_decay_first.register(*_ARGS)
def _(apply, beta1_power, beta2_power, beta1, beta2, eps, grad_scale, weight_decay, lr, master_step, host_adam,
      gradient, param, moment1, moment2, master):
    return _update(apply, beta1_power, beta2_power, beta1, beta2, eps, grad_scale, lr, weight_decay, master_step,
                   host_adam, gradient, param, moment1, moment2, master)


def weight_decay(opt):
    """This step's weight decay for the 16-bit parameters' host pass (a tuple with groups). Read where
    decay_weight reads it, before global_step moves on, so a dynamic decay matches the float32 path."""
    return opt.get_weight_decay() if opt.any_master_decay else opt.no_decay


def step(opt, gradients, lr, weight_decay, beta1_power, beta2_power):
    """Every 16-bit parameter's step; called from AdamOffload.construct. Returns a tuple of True.
    (Spelled out per case: the graph compiler takes no star-unpacking here.)"""
    b1, b2, eps, scale = opt.beta1, opt.beta2, opt.eps, opt.reciprocal_scale
    if opt.is_group_lr and opt.is_group and opt.any_master_decay:
        fn = F.partial(_master_update, opt.apply_on_host, beta1_power, beta2_power, b1, b2, eps, scale)
        return opt.map_reverse(fn, lr, weight_decay, opt.master_steps, opt.master_ops, gradients, opt._parameters,
                               opt.moment1, opt.moment2, opt.masters)
    if opt.is_group_lr:
        fn = F.partial(_master_update_decay_first, opt.apply_on_host, beta1_power, beta2_power, b1, b2, eps, scale, weight_decay)
        return opt.map_reverse(fn, lr, opt.master_steps, opt.master_ops, gradients, opt._parameters, opt.moment1,
                               opt.moment2, opt.masters)
    if opt.is_group and opt.any_master_decay:
        fn = F.partial(_master_update, opt.apply_on_host, beta1_power, beta2_power, b1, b2, eps, scale, lr)
        return opt.map_reverse(fn, weight_decay, opt.master_steps, opt.master_ops, gradients, opt._parameters,
                               opt.moment1, opt.moment2, opt.masters)
    fn = F.partial(_master_update, opt.apply_on_host, beta1_power, beta2_power, b1, b2, eps, scale, lr, weight_decay)
    return opt.map_reverse(fn, opt.master_steps, opt.master_ops, gradients, opt._parameters, opt.moment1, opt.moment2,
                           opt.masters)


_scale_unless_sixteen = C.MultitypeFuncGraph("mindspore_offload_scale_unless_sixteen")


@_scale_unless_sixteen.register("Tensor", "Bool", "Tensor")
def _(reciprocal_scale, sixteen, gradient):
    """A 16-bit gradient is unscaled in float32 in the host pass: in 16 bits it could underflow."""
    if sixteen:
        return gradient
    return F.tensor_mul(gradient, F.cast(reciprocal_scale, F.dtype(gradient)))


def scale_grad(opt, gradients):
    """Optimizer.scale_grad for float32 gradients only."""
    if opt.need_scale:
        return opt.map_(F.partial(_scale_unless_sixteen, opt.reciprocal_scale), opt.sixteen_bit, gradients)
    return gradients


# Bytes per parameter element: (on the device, on the host, across per step). float32, device path:
# parameter + gradient + the delta sent back; host: moment1 + moment2; across: gradient down, delta up.
# 16-bit: parameter + gradient + the new parameter sent back; host: master + moment1 + moment2; across:
# gradient and parameter down (the pass compares the parameter with its master, so that a write since
# the last step is never undone), new parameter up.
_BYTES = {"float32": (12, 8, 8), "float16": (6, 12, 6), "bfloat16": (6, 12, 6)}


def memory_report(params, shard=None):
    """What the parameters cost on the device and on the host, and what crosses each step; see
    AdamOffload.memory_report. ``shard``: the optimizer's _sharding.Layout, or None. A sliced parameter
    keeps only this rank's slice on the host, and only that slice's gradient and result cross."""
    rows = {}
    for param in params:
        kind = str(param.dtype).lower()
        kind = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}[kind]
        count = int(np.prod(param.shape)) if len(param.shape) else 1
        on_host = _sharding.slice_length(count, shard.ranks) if _sliced(param, shard) else count
        device, host, across = _BYTES[kind]
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


def _put_op(library):
    """The op that writes gathered 16-bit slices into a parameter in host memory (AdamOffloadMasterPut)."""
    op = ops.Custom(f"{library}:AdamOffloadMasterPut", out_shape=lambda *shapes: [1],
                    out_dtype=lambda *dtypes: ms.float32, func_type="aot")
    op.set_device("CPU")
    op.add_prim_attr("side_effect_mem", True)  # writes the parameter
    return op


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


def attach(opt, library, use_nesterov, use_locking):
    """Sets up the 16-bit parameters' host state and ops on ``opt`` (called from AdamOffload.__init__)."""
    check_master_names(opt._parameters, opt.cls_name)
    check_assignable(opt._parameters, opt.apply_on_host, opt.cls_name)
    opt.moment1, opt.moment2, opt.masters = host_state(opt._parameters, opt.moment1, opt.moment2, opt.shard)
    opt.sixteen_bit, decay = master_step_flags(opt)
    opt.master_steps = master_steps(opt)
    if any(step is _sharding.master_step for step in opt.master_steps) and _sharding._PUT is None:
        _sharding._PUT = _put_op(library)
    opt.any_master_decay = any(decay)
    opt.no_decay = Tensor(0.0, mstype.float32)
    opt.master_ops = master_ops(opt, library, opt.sixteen_bit, decay, use_nesterov, use_locking)
