"""The step table: how each kind of parameter receives its update, and the host op that computes it.

Every parameter of an AdamOffload has one *step kind*, a row of ``STEP_KINDS``, chosen once at
construction (``choose``). A row names the kernel's custom-op entry point and says what the pass does
(``master``: a 16-bit parameter with a float32 master, decayed and unscaled on the host; ``sliced``: this
rank's slice of the state; ``in_place``: the pass writes the parameter itself). Its graph function,
``graph_functions(...)[name]``, takes the one argument layout every kind shares:

    (hyper, lr, weight_decay, host_op, gradient, param, moment1, moment2, master)

``hyper`` is this step's (beta1_power, beta2_power, beta1, beta2, eps, grad_scale); ``lr`` and
``weight_decay`` are the parameter's (weight_decay is only read by the master kinds, which decay on the
host; the others were decayed in the graph); ``master`` is the float32 master, or for a float32 parameter
its moment1 as a placeholder never read. AdamOffload.construct maps one function over every parameter.

Adding a kind is a row here, its graph function in ``graph_functions`` and its entry point in csrc/.

A kind with a ``bucket`` entry point (Adam's and AdamW's float32 kinds in host memory) is updated a bucket at
a time: consecutive parameters of that kind that share a learning rate, up to ``MAX_BUCKET`` of them, go to one
op (``bucket_op``), which runs one pass over all their elements, split over the kernel's threads at once. A
step then pays one op launch and one wake-up of the threads a bucket, not one a parameter; every parameter gets
the bits its own op would give it. In the per-parameter map such a parameter's graph function is
``in_bucket``, which does nothing.
"""
import dataclasses

import mindspore as ms
from mindspore import ops
from mindspore.common import dtype as mstype
from mindspore.ops import composite as C
from mindspore.ops import functional as F

from mindspore_offload import _sharding, kernel
from mindspore_offload import _validation as check


@dataclasses.dataclass(frozen=True)
class StepKind:
    """One row of the table (see the module docstring)."""

    entry: str  # the kernel's entry point, before its variant suffixes
    master: bool = False  # a 16-bit parameter with a float32 master: decayed and unscaled on the host
    sliced: bool = False  # this rank's slice of the state (shard_state=True); leftover_from comes first
    in_place: bool = False  # the pass writes the parameter (host memory) itself
    rule: str = "adam"  # the update rule: "adam" (AdamOffload) or "adamw" (AdamWeightDecayOffload)
    bucket: str = ""  # the entry point that updates many parameters of this kind in one pass, if any


STEP_KINDS = {
    "delta": StepKind("AdamOffloadStep"),
    "host": StepKind("AdamOffloadApply", in_place=True, bucket="AdamOffloadApplyBucket"),
    "sliced": StepKind("AdamOffloadSlice", sliced=True),
    "master": StepKind("AdamOffloadMaster", master=True),
    "master_host": StepKind("AdamOffloadMasterApply", master=True, in_place=True),
    "master_sliced": StepKind("AdamOffloadMasterSlice", master=True, sliced=True),
    "master_sliced_host": StepKind("AdamOffloadMasterSlice", master=True, sliced=True, in_place=True),
    # AdamW: the host pass reads the parameter (its decay needs it) and, off the host, returns its new value.
    "adamw_delta": StepKind("AdamWOffloadStep", rule="adamw"),
    "adamw_host": StepKind("AdamWOffloadApply", in_place=True, rule="adamw", bucket="AdamWOffloadApplyBucket"),
    "adamw_sliced": StepKind("AdamWOffloadStep", sliced=True, rule="adamw"),
    "adamw_master": StepKind("AdamWOffloadMaster", master=True, rule="adamw"),
    "adamw_master_host": StepKind("AdamWOffloadMasterApply", master=True, in_place=True, rule="adamw"),
    "adamw_master_sliced": StepKind("AdamWOffloadMasterSlice", master=True, sliced=True, rule="adamw"),
    "adamw_master_sliced_host": StepKind("AdamWOffloadMasterSlice", master=True, sliced=True, in_place=True,
                                         rule="adamw"),
}


def choose(has_master, sliced, in_host_memory, rule="adam"):
    """The row for a parameter: whether it has a float32 master, whether this rank keeps a slice of its
    state, whether it lives in host memory (the CPU backend), and the optimizer's update rule (a rule
    other than "adam" prefixes the row's name with its own)."""
    if has_master:
        name = "master_sliced" if sliced else "master"
        name = name + "_host" if in_host_memory else name
    elif sliced:  # the gathered result lands in the graph, wherever the parameter lives
        name = "sliced"
    else:
        name = "host" if in_host_memory else "delta"
    return name if rule == "adam" else f"{rule}_{name}"


# Tensors a bucket takes at most: 7 + 4 x 256 inputs to one op. Past a few dozen tensors a bucket's launch
# and wake-up are paid off; the bound keeps one op's inputs (and its shape inference) of modest size.
MAX_BUCKET = 256

# AdamW's two roundings, the default first (kernel.ROUNDINGS, csrc/adamw.h).
ROUNDINGS = kernel.ROUNDINGS


def buckets(kind_names, lr_keys, limit=None):
    """The buckets, as (start, stop) ranges of parameter indices: runs of consecutive parameters of one
    kind with a bucket entry point and the same learning rate (equal ``lr_keys``), ``limit`` (default
    MAX_BUCKET) at most a bucket. Runs, because the graph takes a bucket's parameters, moments and
    gradients as slices of its tuples (picking them one by one unrolls into a call per element, and
    MindSpore's compiler stops at a depth of 1000). A lone parameter is no bucket: it keeps its own op."""
    limit = MAX_BUCKET if limit is None else limit
    out = []
    start = 0
    for index in range(len(kind_names) + 1):
        ends = index == len(kind_names) or index - start == limit or not STEP_KINDS[kind_names[index]].bucket \
            or (kind_names[index], lr_keys[index]) != (kind_names[start], lr_keys[start])
        if ends:
            if index - start > 1 and STEP_KINDS[kind_names[start]].bucket:
                out.append((start, index))
            start = index
    return tuple(out)


_ARGS = ("Tuple", "Tensor", "Tensor", "Function", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor")


def _graph_function(fn):
    """``fn`` as a MultitypeFuncGraph taking the one argument layout."""
    graph = C.MultitypeFuncGraph("mindspore_offload_" + fn.__name__)
    graph.register(*_ARGS)(fn)
    return graph


@_graph_function
def delta_on_device(hyper, lr, weight_decay, host_op, gradient, param, moment1, moment2, master):
    """The host op updates the moments and returns the step; the graph adds it to the parameter where
    the parameter lives (the device, on Ascend/GPU)."""
    beta1_power, beta2_power, beta1, beta2, eps, _ = hyper
    delta = host_op(moment1, moment2, beta1_power, beta2_power, lr, beta1, beta2, eps, gradient)
    return F.depend(True, F.assign_add(param, delta))


@_graph_function
def in_bucket(hyper, lr, weight_decay, host_op, gradient, param, moment1, moment2, master):
    """The parameter's bucket op updates it (AdamOffload.construct calls it after the map)."""
    return True


@_graph_function
def applied_on_host(hyper, lr, weight_decay, host_op, gradient, param, moment1, moment2, master):
    """The parameter is host memory too: the op adds the step to it in the same pass over the moments."""
    beta1_power, beta2_power, beta1, beta2, eps, _ = hyper
    done = host_op(param, moment1, moment2, beta1_power, beta2_power, lr, beta1, beta2, eps, gradient)
    return F.depend(True, done)


@_graph_function
def master_on_device(hyper, lr, weight_decay, host_op, gradient, param, moment1, moment2, master):
    """A 16-bit parameter: the pass (which reads the parameter, to keep a write since the last step)
    returns its new value, and the graph assigns it where the parameter lives."""
    beta1_power, beta2_power, beta1, beta2, eps, grad_scale = hyper
    new = host_op(param, master, moment1, moment2, beta1_power, beta2_power, lr, beta1, beta2, eps, weight_decay,
                  grad_scale, gradient)
    return F.depend(True, F.assign(param, new))


@_graph_function
def master_on_host(hyper, lr, weight_decay, host_op, gradient, param, moment1, moment2, master):
    """A 16-bit parameter in host memory: the pass writes its new value in place (MindSpore's CPU backend
    has no bfloat16 Assign to do it in the graph)."""
    beta1_power, beta2_power, beta1, beta2, eps, grad_scale = hyper
    done = host_op(param, master, moment1, moment2, beta1_power, beta2_power, lr, beta1, beta2, eps, weight_decay,
                   grad_scale, gradient)
    return F.depend(True, done)


@_graph_function
def adamw_on_device(hyper, lr, weight_decay, host_op, gradient, param, moment1, moment2, master):
    """AdamW, the parameter off the host: the pass reads it (the decay needs it) and returns its new value,
    rounded once as MindSpore's kernel rounds it; the graph assigns it where the parameter lives."""
    beta1, beta2, eps = hyper
    new = host_op(param, moment1, moment2, lr, beta1, beta2, eps, weight_decay, gradient)
    return F.depend(True, F.assign(param, new))


@_graph_function
def adamw_on_host(hyper, lr, weight_decay, host_op, gradient, param, moment1, moment2, master):
    """AdamW, the parameter in host memory: the pass updates it in place with the moments."""
    beta1, beta2, eps = hyper
    return F.depend(True, host_op(param, moment1, moment2, lr, beta1, beta2, eps, weight_decay, gradient))


@_graph_function
def adamw_master_on_device(hyper, lr, weight_decay, host_op, gradient, param, moment1, moment2, master):
    """AdamW, a 16-bit parameter: as master_on_device, the decay reading the master."""
    beta1, beta2, eps = hyper
    new = host_op(param, master, moment1, moment2, lr, beta1, beta2, eps, weight_decay, gradient)
    return F.depend(True, F.assign(param, new))


@_graph_function
def adamw_master_on_host(hyper, lr, weight_decay, host_op, gradient, param, moment1, moment2, master):
    """AdamW, a 16-bit parameter in host memory: as master_on_host."""
    beta1, beta2, eps = hyper
    return F.depend(True, host_op(param, master, moment1, moment2, lr, beta1, beta2, eps, weight_decay, gradient))


def _this_ranks_slice(tensor, k, rank, ranks):
    """``rank``'s flat slice of ``tensor``: k elements, zero-padded past the end."""
    size = tensor.size
    piece = tensor.reshape((-1,))
    # Pad the whole tensor, not just the slice that runs past the end: every rank must build the same
    # graph, or the collectives of different parameters can run in a different order on each.
    if ranks * k > size:  # shapes are constants: decided at compile time
        piece = ops.concat((piece, ops.zeros((ranks * k - size,), tensor.dtype)))
    return piece[rank * k:rank * k + k]


def _sliced_graph_functions(shard, gather, put):
    """The sliced kinds' graph functions for this rank (``shard``: its _sharding.Layout). They close over
    the rank, the rank count and the optimizer's own collective ops, which the graph then holds as
    constants: every rank builds the same graph but for the slice offsets."""
    rank, ranks = shard.rank, shard.ranks

    @_graph_function
    def sliced(hyper, lr, weight_decay, host_op, gradient, param, moment1, moment2, master):
        """The whole delta, computed a slice a rank: the op ("Slice") runs on this rank's slice of the
        gradient and moments; the gather rebuilds the whole delta on every rank; the graph adds it."""
        beta1_power, beta2_power, beta1, beta2, eps, _ = hyper
        k = moment1.shape[0]
        leftover_from = ops.scalar_to_tensor(_sharding.leftover_from(gradient.size, k, rank), mstype.int64)
        piece = host_op(leftover_from, moment1, moment2, beta1_power, beta2_power, lr, beta1, beta2, eps,
                        _this_ranks_slice(gradient, k, rank, ranks))
        delta = gather(piece)[:gradient.size].reshape(gradient.shape)
        return F.depend(True, F.assign_add(param, delta))

    def master_slice(hyper, lr, weight_decay, host_op, gradient, param, moment1, moment2, master, whole):
        """This rank's slice of the master and moments, updated from its slice of the 16-bit gradient (the
        "MasterSlice" entry point), gives this rank's slice of the new 16-bit parameter; the gather collects
        the N slices (2 bytes an element). ``whole``: the op is given the whole gradient and parameter and
        where this rank's slice starts in them (the CPU backend, which slices no bfloat16), and returns the
        bits as int16 (which its AllGather takes); else the slices are cut on the device."""
        beta1_power, beta2_power, beta1, beta2, eps, grad_scale = hyper
        k = master.shape[0]
        lead = ops.stack((ops.scalar_to_tensor(_sharding.leftover_from(gradient.size, k, rank), mstype.int64),
                          ops.scalar_to_tensor(rank * k if whole else 0, mstype.int64)))
        piece = gradient if whole else _this_ranks_slice(gradient, k, rank, ranks)
        current = param if whole else _this_ranks_slice(param, k, rank, ranks)
        new = host_op(lead, current, master, moment1, moment2, beta1_power, beta2_power, lr, beta1, beta2, eps,
                      weight_decay, grad_scale, piece)
        return gather(new)

    @_graph_function
    def master_sliced(hyper, lr, weight_decay, host_op, gradient, param, moment1, moment2, master):
        gathered = master_slice(hyper, lr, weight_decay, host_op, gradient, param, moment1, moment2, master, False)
        return F.depend(True, F.assign(param, gathered[:gradient.size].reshape(gradient.shape)))

    @_graph_function
    def master_sliced_host(hyper, lr, weight_decay, host_op, gradient, param, moment1, moment2, master):
        gathered = master_slice(hyper, lr, weight_decay, host_op, gradient, param, moment1, moment2, master, True)
        return F.depend(True, put(param, gathered))

    @_graph_function
    def adamw_sliced(hyper, lr, weight_decay, host_op, gradient, param, moment1, moment2, master):
        """AdamW, a slice a rank: the op updates this rank's slice of the moments from its slices of the
        gradient and the parameter and returns the slice's new value; the gather rebuilds the parameter."""
        beta1, beta2, eps = hyper
        k = moment1.shape[0]
        piece = host_op(_this_ranks_slice(param, k, rank, ranks), moment1, moment2, lr, beta1, beta2, eps,
                        weight_decay, _this_ranks_slice(gradient, k, rank, ranks))
        return F.depend(True, F.assign(param, gather(piece)[:gradient.size].reshape(gradient.shape)))

    def adamw_master_slice(hyper, lr, weight_decay, host_op, gradient, param, master, moment1, moment2, whole):
        """master_slice's AdamW twin in layout: the lead is only the start (no leftovers to place)."""
        beta1, beta2, eps = hyper
        k = master.shape[0]
        lead = ops.stack((ops.scalar_to_tensor(rank * k if whole else 0, mstype.int64),))
        piece = gradient if whole else _this_ranks_slice(gradient, k, rank, ranks)
        current = param if whole else _this_ranks_slice(param, k, rank, ranks)
        return gather(host_op(lead, current, master, moment1, moment2, lr, beta1, beta2, eps, weight_decay, piece))

    @_graph_function
    def adamw_master_sliced(hyper, lr, weight_decay, host_op, gradient, param, moment1, moment2, master):
        gathered = adamw_master_slice(hyper, lr, weight_decay, host_op, gradient, param, master, moment1, moment2,
                                      False)
        return F.depend(True, F.assign(param, gathered[:gradient.size].reshape(gradient.shape)))

    @_graph_function
    def adamw_master_sliced_host(hyper, lr, weight_decay, host_op, gradient, param, moment1, moment2, master):
        gathered = adamw_master_slice(hyper, lr, weight_decay, host_op, gradient, param, master, moment1, moment2,
                                      True)
        return F.depend(True, put(param, gathered))

    return {"sliced": sliced, "master_sliced": master_sliced, "master_sliced_host": master_sliced_host,
            "adamw_sliced": adamw_sliced, "adamw_master_sliced": adamw_master_sliced,
            "adamw_master_sliced_host": adamw_master_sliced_host}


def graph_functions(shard, library):
    """{kind name: its graph function} for an optimizer whose layout is ``shard`` (None: not sharded).
    The sliced kinds get their own collective ops, built here once per optimizer."""
    functions = {"delta": delta_on_device, "host": applied_on_host, "master": master_on_device,
                 "master_host": master_on_host, "adamw_delta": adamw_on_device, "adamw_host": adamw_on_host,
                 "adamw_master": adamw_master_on_device, "adamw_master_host": adamw_master_on_host}
    if shard is not None:
        functions.update(_sliced_graph_functions(shard, ops.AllGather(), _put_op(library)))
    return functions


def _put_op(library):
    """The op that writes gathered 16-bit slices into a parameter in host memory (AdamOffloadMasterPut)."""
    op = ops.Custom(f"{library}:AdamOffloadMasterPut", out_shape=lambda *shapes: [1],
                    out_dtype=lambda *dtypes: ms.float32, func_type="aot")
    op.set_device("CPU")
    op.add_prim_attr("side_effect_mem", True)  # writes the parameter
    return op


def _element_type(dtype):
    while hasattr(dtype, "element_type"):  # Ref[Tensor[Float32]] and Tensor[Float32] to Float32
        dtype = dtype.element_type()
    return dtype


def entry_name(base, *, use_nesterov, use_locking, rounding=ROUNDINGS[0]):
    """The exported entry point of a variant: base[Nesterov][Float32][Locked] (csrc/custom_op.h); the
    Float32 variants are AdamW's float32 rounding (csrc/adamw.h)."""
    return (base + ("Nesterov" if use_nesterov else "") + ("Float32" if rounding == "float32" else "")
            + ("Locked" if use_locking else ""))


def host_op(kind, param, library, cls_name, guard, *, use_nesterov, use_locking, decay=False, unscale=False,
            rounding=ROUNDINGS[0]):
    """The custom op that runs ``kind``'s entry point on the host for ``param`` (one op a parameter, so a
    compile-time error can name it). ``decay`` and ``unscale`` pick the master kinds' variants, ``rounding``
    AdamW's. Shapes and dtypes are checked when the graph is compiled, before any state is touched; ``guard``
    runs then too."""
    adam = kind.rule == "adam"
    entry = entry_name(kind.entry, use_nesterov=use_nesterov, use_locking=use_locking, rounding=rounding)
    if kind.master and adam:
        entry += ("Decay" if decay else "") + ("Unscale" if unscale else "")
    name, dtype, shape = param.name, param.dtype, tuple(param.shape)
    lead = 1 if kind.sliced else 0  # leftover_from (and start) come first
    # Adam's float32 kinds share nine inputs, after the parameter (in place) or leftover_from (sliced);
    # AdamW's eight after the parameter, which every AdamW kind reads.
    skip = 1 if kind.sliced or kind.in_place or not adam else 0
    inputs = check.ADAM_INPUTS if adam else check.ADAMW_INPUTS

    def out_shape(*shapes):
        guard()  # _contiguous.CompileGuard: runs at every compile, before the graph does anything
        if not kind.master:
            check.check_gradient_shapes(shapes[skip:], cls_name, name)
            return [1] if kind.in_place else shapes[-1]
        # a sliced op on the device path is given slices; every other master op the whole gradient
        if (kind.in_place or not kind.sliced) and tuple(shapes[-1]) != shape:
            raise ValueError(f"For '{cls_name}', a gradient of shape {tuple(shapes[-1])} does not match its "
                             f"parameter '{name}' of shape {shape}.")
        if kind.sliced:
            return shapes[lead + 1]  # the master's slice
        return [1] if kind.in_place else shapes[-1]

    def out_dtype(*dtypes):
        if not kind.master:
            check.check_gradient_dtypes(dtypes[skip:], cls_name, name, inputs)
            return dtypes[-1]
        gradient = _element_type(dtypes[-1])
        if gradient != dtype:
            raise TypeError(f"For '{cls_name}', the gradient of the {dtype} parameter '{name}' must be {dtype}, "
                            f"but got {gradient}. Keep the gradient in the parameter's dtype (the host widens it "
                            "to float32 itself).")
        if kind.sliced:
            return ms.int16 if kind.in_place else dtypes[-1]
        return ms.float32 if kind.in_place else dtypes[-1]

    op = ops.Custom(f"{library}:{entry}", out_shape=out_shape, out_dtype=out_dtype, func_type="aot")
    # The state is host memory whatever the network's device, so the op always runs on the CPU.
    op.set_device("CPU")
    # The op writes its state (and the parameter, in place) through pointers. Declaring the side effect keeps
    # the graph from reordering reads and saves around it, merging two calls or dropping one.
    op.add_prim_attr("side_effect_mem", True)
    return op


# A bucket entry's layout, by update rule: its shared scalars (the step's, the bucket's learning rate among
# them), then its columns of one tensor a parameter. Adam's six scalars are (beta1_power, beta2_power, lr,
# beta1, beta2, eps) and its columns (parameter, moment1, moment2, gradient); AdamW's four are (lr, beta1,
# beta2, eps) and its columns (parameter, moment1, moment2, weight_decay, gradient): the parameters of a
# bucket share a learning rate, not a decay (the beta/gamma filter and the groups set it a parameter).
BUCKET_LAYOUTS = {"adam": (6, 4), "adamw": (4, 5)}


def bucket_op(kind, params, library, cls_name, guard, *, use_nesterov, use_locking, rounding=ROUNDINGS[0]):
    """The custom op that runs ``kind``'s bucket entry point on ``params`` (float32, host memory), taking the
    rule's shared scalars, then its columns (BUCKET_LAYOUTS); ``rounding`` picks AdamW's variant. Shapes and
    dtypes are checked when the graph is compiled, naming the parameter at fault, before any state is
    touched."""
    entry = entry_name(kind.bucket, use_nesterov=use_nesterov, use_locking=use_locking, rounding=rounding)
    shared, width = BUCKET_LAYOUTS[kind.rule]
    inputs = check.ADAM_INPUTS if kind.rule == "adam" else check.ADAMW_INPUTS
    k = len(params)

    def per_parameter(items):
        """Each parameter's name and its inputs in the per-parameter entries' layout after the parameter:
        moment1, moment2, the shared scalars, its own scalars (AdamW's weight_decay), the gradient."""
        scalars, rest = items[:shared], items[shared:]
        columns = [rest[c * k:(c + 1) * k] for c in range(width)]
        return [(param.name, (columns[1][i], columns[2][i], *scalars, *(c[i] for c in columns[3:-1]),
                              columns[-1][i]))
                for i, param in enumerate(params)]

    def out_shape(*shapes):
        guard()
        for name, layout in per_parameter(shapes):
            check.check_gradient_shapes(layout, cls_name, name)
        return [1]

    def out_dtype(*dtypes):
        for name, layout in per_parameter(dtypes):
            check.check_gradient_dtypes(layout, cls_name, name, inputs)
        return ms.float32

    op = ops.Custom(f"{library}:{entry}", out_shape=out_shape, out_dtype=out_dtype, func_type="aot")
    op.set_device("CPU")
    op.add_prim_attr("side_effect_mem", True)  # writes the parameters and their moments
    return op


update_parameter = C.MultitypeFuncGraph("mindspore_offload_update_parameter")


@update_parameter.register("Tuple", "Tensor", "Tensor", "Function", "Function", "Tensor", "Tensor", "Tensor",
                           "Tensor", "Tensor")
def _(hyper, lr, weight_decay, graph_function, host_op, gradient, param, moment1, moment2, master):
    """One parameter's update: its kind's graph function with its host op."""
    return graph_function(hyper, lr, weight_decay, host_op, gradient, param, moment1, moment2, master)


same_value = C.MultitypeFuncGraph("mindspore_offload_same_value")


@same_value.register("Tensor", "Tensor")
def _(value, param):
    """``value``, whatever the parameter: a map over the parameters with it repeats the value."""
    return value


scale_unless_master = C.MultitypeFuncGraph("mindspore_offload_scale_unless_master")


@scale_unless_master.register("Tensor", "Bool", "Tensor")
def _(reciprocal_scale, master, gradient):
    """A master kind's gradient is unscaled in float32 in the host pass: in 16 bits it could underflow."""
    if master:
        return gradient
    return F.tensor_mul(gradient, F.cast(reciprocal_scale, F.dtype(gradient)))


decay_where_flagged = C.MultitypeFuncGraph("mindspore_offload_decay_where_flagged")


@decay_where_flagged.register("Tensor", "Bool", "Tensor")
def _(zero, flag, weight_decay):
    """An AdamW parameter's decay: the optimizer's (or its group's) where its decay flag is set, else 0."""
    return weight_decay if flag else zero
