"""What the bucket tests share: whole float32 tensors to put in a bucket, and the levels and thread
counts a bucket entry is run at, with chunks that begin inside tensors."""
import numpy as np

from mindspore_offload import kernel

# Sizes on both sides of every vector width, then the same backwards: a bucket's chunks cross from small
# tensors into large ones and back.
SIZES = [1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 1000, 4099]
SIZES = SIZES + SIZES[::-1]


def tensors(sizes, seed):
    """Per size, [param, moment1, moment2, gradient] (float32)."""
    rng = np.random.default_rng(seed)
    out = []
    for n in sizes:
        out.append([rng.standard_normal(n).astype(np.float32),  # param
                    (rng.standard_normal(n) * 0.1).astype(np.float32),  # moment1
                    (np.abs(rng.standard_normal(n)) * 0.01).astype(np.float32),  # moment2
                    rng.standard_normal(n).astype(np.float32)])  # gradient
    return out


def copy(state):
    return [[a.copy() for a in t] for t in state]


def columns(state, *which):
    """The bucket's tensor inputs: for each index in ``which``, that array of every tensor in turn."""
    return [t[i] for i in which for t in state]


def every_level_and_thread_count(lab):
    """Sets the lab build to each level and 1, 2 and 3 threads in turn, with a grain of 64 so that even a
    small bucket is split and its chunks begin inside tensors; yields (level, threads)."""
    for isa in kernel.available_isas():
        for threads in (1, 2, 3):
            lab.set_isa(isa)
            lab.set_num_threads(threads)
            lab.set_tuning(64, 1 << 40)
            yield isa, threads


def assert_same_bits(got, want, names, context):
    """Tensor by tensor, the arrays named in ``names`` (the first of each tensor's) bit for bit."""
    for i, (a_tensor, b_tensor) in enumerate(zip(got, want)):
        for a, b, name in zip(a_tensor, b_tensor, names):
            assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), (*context, i, name)


# The optimizer tests' parameters: ten float32 tensors of sizes on both sides of the vector widths.
SHAPES = [(3,), (8,), (17, 3), (1,), (64,), (5, 7), (1000,), (9,), (2, 2, 2), (33,)]
NAMES = [f"layer{i}.weight" for i in range(len(SHAPES))]


def with_fault(arrays, case, *, shared, width, lr_at):
    """A bucket entry's arrays (`shared` scalars, then `width` columns of k tensors, the output last) with
    one fault, named by `case`; returns (arrays, dtypes or None). Column 1 is the first moment, the last
    the gradient, column 3 AdamW's weight decay."""
    k = (len(arrays) - shared - 1) // width
    at = lambda column, i: shared + column * k + i  # noqa: E731
    arrays, dtypes = list(arrays), None
    if case == "no tensor":
        arrays = arrays[:shared] + arrays[-1:]
    elif case.startswith("a tensor short"):
        arrays = arrays[:-2] + arrays[-1:]
    elif case.startswith("float16 "):
        dtypes = [str(a.dtype) for a in arrays]
        dtypes[at(width - 1 if case == "float16 gradient" else 3, 1)] = "float16"
    elif case == "moment size":
        arrays[at(1, 2)] = arrays[at(1, 2)][:3].copy()
    elif case == "gradient size":
        arrays[at(width - 1, 0)] = arrays[at(width - 1, 0)][:8].copy()
    elif case == "empty scalar":
        arrays[lr_at] = np.empty((0,), np.float32)
    elif case == "empty weight decay":
        arrays[at(3, 2)] = np.empty((0,), np.float32)
    elif case == "empty output":
        arrays[-1] = np.empty((0,), np.float32)
    elif case == "step zero":
        arrays[0] = np.ones((1,), np.float32)
    else:
        raise ValueError(case)
    return arrays, dtypes


def assert_unchanged(state, before):
    """Every tensor of the bucket as it was (a shortened one is a copy, not checked)."""
    for got, want in zip(state, before):
        for a, b in zip(got, want):
            if a.size == b.size:
                assert np.array_equal(a, b)


def make_params(names=NAMES, seed=0):
    """One float32 Parameter per shape of SHAPES, named by ``names``, the same values for the same seed."""
    from mindspore import Parameter, Tensor

    rng = np.random.default_rng(seed)
    return [Parameter(Tensor(rng.standard_normal(shape).astype(np.float32)), name=name)
            for name, shape in zip(names, SHAPES)]


def gradients(steps, seed=1):
    """``steps`` tuples of gradients, one per shape of SHAPES."""
    from mindspore import Tensor

    rng = np.random.default_rng(seed)
    return [tuple(Tensor(rng.standard_normal(shape).astype(np.float32)) for shape in SHAPES)
            for _ in range(steps)]


def train(opt, params, steps):
    """``steps`` steps of ``opt``; returns its parameters' and moments' values after them."""
    for grads in gradients(steps):
        opt(grads)
    return [p.asnumpy() for p in params] + [m.asnumpy() for m in (*opt.moment1, *opt.moment2)]


def assert_all_same_bits(got, want):
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), i
