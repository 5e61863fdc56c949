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
