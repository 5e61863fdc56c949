"""The AdamW kernel bit for bit against MindSpore's own ops.AdamWeightDecay on the CPU backend.

MindSpore 2.10 rounds every element of a float32 AdamWeightDecay with one scalar loop on a CPU without
AVX-512 (csrc/adamw.h says how); there every size, level and thread count must match it in every bit. On
a CPU with AVX-512 its elements in whole 16s of each thread task take a float32-only vector body instead;
docs/design.md gives the measured difference, and this test then allows it.
"""
import numpy as np
import pytest

from mindspore_offload import kernel

ms = pytest.importorskip("mindspore")

SIZES = [1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 1000, 4099, (1 << 16) + 7]
HYPER = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-6)
STEPS = 3
# MindSpore's float32 vector body on AVX-512 CPUs against its own scalar loop: measured, per step, in
# units of the new parameter's ulp (docs/design.md, "AdamW on the CPU backend").
AVX512_ULPS = 4


def mindspore_step(w, m, v, g, weight_decay):
    from mindspore import Parameter, Tensor, ops

    w, m, v = (Parameter(Tensor(x.copy())) for x in (w, m, v))
    scalars = [Tensor(np.float32(HYPER[k])) for k in ("lr", "beta1", "beta2", "eps")]
    ops.AdamWeightDecay()(w, m, v, *scalars, Tensor(np.float32(weight_decay)), Tensor(g))
    return w.asnumpy(), m.asnumpy(), v.asnumpy()


def problem(n):
    rng = np.random.default_rng(n)
    w = rng.standard_normal(n).astype(np.float32)
    m = (rng.standard_normal(n) * 0.1).astype(np.float32)
    v = (np.abs(rng.standard_normal(n)) * 0.01).astype(np.float32)
    grads = [(rng.standard_normal(n) * 10.0 ** rng.integers(-4, 2, n)).astype(np.float32) for _ in range(STEPS)]
    return w, m, v, grads


def assert_same(ours, theirs, what):
    if "avx512" in kernel.available_isas():
        ulp = np.spacing(np.abs(theirs).astype(np.float32))
        np.testing.assert_array_less(np.abs(ours - theirs), AVX512_ULPS * ulp + np.finfo(np.float32).tiny, what)
        return
    diff = np.flatnonzero(ours.view(np.uint32) != theirs.view(np.uint32))
    assert diff.size == 0, f"{what}: {diff.size} elements differ, first at {diff[:8]} of {ours.size}"


@pytest.mark.parametrize("decay", [0.0, 0.05])
@pytest.mark.parametrize("n", SIZES)
def test_every_level_and_thread_count_matches_mindspore(n, decay, lab):
    w0, m0, v0, grads = problem(n)
    expected, (w, m, v) = [], (w0, m0, v0)
    for g in grads:
        w, m, v = mindspore_step(w, m, v, g, decay)
        expected.append((w, m, v))
    for isa in kernel.available_isas():
        for threads in (1, 2, 3):
            kernel.set_isa(isa)
            kernel.set_num_threads(threads)
            lab.set_tuning(64, 1 << 40)
            w, m, v = w0.copy(), m0.copy(), v0.copy()
            for t, (g, theirs) in enumerate(zip(grads, expected), start=1):
                # from MindSpore's state each step, so a difference cannot grow
                kernel.adamw_step(w, m, v, g, weight_decay=decay, **HYPER)
                for name, ours, their in zip(("parameter", "moment1", "moment2"), (w, m, v), theirs):
                    assert_same(ours, their, f"{name} ({isa}, {threads} threads, step {t})")
                w, m, v = (x.copy() for x in theirs)
