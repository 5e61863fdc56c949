"""The kernel computes in one fixed FP environment (round to nearest even, subnormals kept: csrc/fp_env.h),
whatever the caller's, and hands the caller's back: subnormal gradients, moments, masters and learning
rates give the same bits with the caller's flush-to-zero on (x86: MXCSR FTZ+DAZ; aarch64: FPCR.FZ, which
importing MindSpore turns on there) as with it off, at every level and thread count.

Inputs are made from bit patterns and compared as bits: with flush-to-zero on in this thread, NumPy's own
arithmetic would flush too.
"""
import subprocess
import sys

import numpy as np
import pytest

from mindspore_offload import kernel
from support import entry_points, levels
from support.paths import ROOT

N = 4099  # whole registers at every width, a thread split with the lab's grain, and 3 leftovers
M_SUB, V_SUB = 0x00080000, 0x00000100  # 2^-130 and 2^-141, float32 subnormals
# beta = 0.5 halves them exactly: fma(m, 0.5, 0.5 * 0) = 2^-131, fma(v, 0.5, 0) = 2^-142.
HYPER = dict(beta1=0.5, beta2=0.5, eps=1e-8, beta1_power=0.5, beta2_power=0.25)


def bits(pattern, n=N):
    return np.full(n, pattern, np.uint32).view(np.float32)


@pytest.fixture
def flush(lab):
    """Sets flush-to-zero in this thread (on or off) for the test, and restores the original after."""
    saved = lab.fp_control()

    def set_flush(on):
        lab.set_fp_control(saved | lab.FLUSH_TO_ZERO if on else saved & ~lab.FLUSH_TO_ZERO)
        return lab.fp_control()

    yield set_flush
    lab.set_fp_control(saved)


def float32_pass(lr, grad_pattern):
    m, v = bits(M_SUB), bits(V_SUB)
    delta = kernel.adam_delta(m, v, bits(grad_pattern), lr=lr, **HYPER)
    p = bits(0x3F800000)
    kernel.adam_apply(p, bits(M_SUB), bits(V_SUB), bits(grad_pattern), lr=lr, **HYPER)
    return [a.view(np.uint32).copy() for a in (m, v, delta, p)]


def master_pass(half):
    """Subnormal masters and 16-bit subnormal gradients (every 16-bit subnormal pattern, both signs)."""
    g16 = (np.arange(N, dtype=np.uint32) % 0x400 | (np.arange(N) % 2 << 15)).astype(np.uint16)
    g16 = g16.view(np.float16) if half == "float16" else g16.view(kernel_bfloat16())
    w, m, v = bits(M_SUB), bits(M_SUB), bits(V_SUB)
    out = kernel.adam_master_step(w, m, v, g16, lr=1e-3, weight_decay=0.5, grad_scale=0.5, **HYPER)
    return [a.view(np.uint32).copy() for a in (w, m, v)] + [out.view(np.uint16).copy()]


def kernel_bfloat16():
    from mindspore.common.np_dtype import bfloat16

    return bfloat16


def every_level_and_thread_count(lab, run):
    """{(level, threads): run()} with the lab's grain of 64, so N splits over the threads."""
    return {key: run() for key in levels.every_level_and_thread_count(lab)}


@pytest.mark.parametrize("grad", [0, 0x00000001], ids=["subnormal-moments", "subnormal-gradient"])
def test_subnormals_survive_the_callers_flush_to_zero(grad, lab, flush):
    lr = 1e-3
    runs = {}
    for on in (False, True):
        control = flush(on)
        runs[on] = every_level_and_thread_count(lab, lambda: float32_pass(lr, grad))
        assert lab.fp_control() == control, "the kernel did not give the caller its FP control back"
    flush(False)
    reference = runs[False]["scalar", 1]
    if grad == 0:
        assert (reference[0] == M_SUB >> 1).all() and (reference[1] == V_SUB >> 1).all()
    for on, results in runs.items():
        for key, result in results.items():
            for a, b in zip(result, reference):
                np.testing.assert_array_equal(a, b, err_msg=f"flush={on}, level and threads {key}")


def entry_pass():
    """AdamOffloadStep as MindSpore calls it, with a subnormal learning rate as float32 data (2^-130): the
    step lr_t * m / (sqrt(v) + eps) is subnormal too. (kernel.adam_delta takes lr as a Python float and
    rounds it to float32 in the caller's environment, where flush-to-zero makes such a value 0.)"""
    m, v, g = bits(M_SUB), bits(V_SUB), bits(0x3F800000)
    s = lambda x, shape=(): np.full(shape, x, np.float32)  # noqa: E731
    lr = np.full((), M_SUB, np.uint32).view(np.float32)
    out = np.zeros(N, np.float32)
    arrays = [m, v, s(0.5, (1,)), s(0.25, (1,)), lr, s(0.5), s(0.5), s(1e-8), g, out]
    assert entry_points.call("AdamOffloadStep", arrays) == 0
    return [a.view(np.uint32).copy() for a in (m, v, out)]


def test_a_subnormal_learning_rate_survives_the_callers_flush_to_zero(lab, flush):
    runs = {}
    for on in (False, True):
        control = flush(on)
        for isa in kernel.available_isas():
            for threads in (1, 3):
                kernel.set_isa(isa)
                kernel.set_num_threads(threads)
                runs[on, isa, threads] = entry_pass()
        assert lab.fp_control() == control
    flush(False)
    reference = runs[False, "scalar", 1]
    assert ((reference[2] & 0x7FFFFFFF) != 0).all() and ((reference[2] & 0x7F800000) == 0).all()  # subnormal
    for key, result in runs.items():
        for a, b in zip(result, reference):
            np.testing.assert_array_equal(a, b, err_msg=f"flush, level and threads {key}")


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_subnormal_masters_survive_the_callers_flush_to_zero(half, lab, flush):
    runs = {}
    for on in (False, True):
        control = flush(on)
        runs[on] = every_level_and_thread_count(lab, lambda: master_pass(half))
        assert lab.fp_control() == control
    flush(False)
    reference = runs[False]["scalar", 1]
    assert (reference[1] != 0).sum() > N // 2  # the subnormal moments and gradients were not flushed
    for on, results in runs.items():
        for key, result in results.items():
            for a, b in zip(result, reference):
                np.testing.assert_array_equal(a, b, err_msg=f"flush={on}, level and threads {key}")


def test_pass_environment_is_round_to_nearest_without_flushing(lab):
    """The fixed environment itself: x86 MXCSR 0x1F80 (FTZ, DAZ off, exceptions masked), aarch64 FPCR 0."""
    assert lab.PASS_FP_CONTROL in (0x1F80, 0)
    assert lab.PASS_FP_CONTROL & lab.FLUSH_TO_ZERO == 0


def test_what_importing_mindspore_does_to_the_fp_control():
    """Records the reason for the fixed environment: the control before and after `import mindspore` in a
    fresh process. On x86-64 it stays; on aarch64 MindSpore turns on FPCR.FZ (flush to zero)."""
    pytest.importorskip("mindspore_offload._bench", reason="the lab build is made by `make test` or MINDSPORE_OFFLOAD_BENCH=1")
    # the lab module loaded by path: the package's __init__ would import MindSpore first
    code = ("import sys; sys.path.insert(0, 'tests'); from support.digest import load; b = load('_bench')[0]; "
            "before = b.fp_control(); import mindspore; print(before, b.fp_control(), b.FLUSH_TO_ZERO)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    before, after, flush_bits = map(int, proc.stdout.split())
    if before & flush_bits == 0 and after & flush_bits:
        print(f"importing MindSpore turned flush-to-zero on ({before:#x} -> {after:#x})")
    assert before & flush_bits == 0
