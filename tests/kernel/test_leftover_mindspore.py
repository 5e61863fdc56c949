"""Bit for bit against MindSpore's ops.AdamNoUpdateParam, leftover elements (count mod 8) included.

MindSpore rounds the last n mod 8 elements of a tensor it runs as one thread task with scalar code of
its own (csrc/adam_leftover.cpp says how); we do the same at every level and thread count, so these
tensors match in every bit. Where MindSpore splits a tensor across thread tasks, its task edges add
leftovers we cannot know of: tests/kernel/test_kernel_mindspore.py bounds those.
"""
import numpy as np
import pytest

from mindspore_offload import kernel
from support.host import NOT_MINDSPORE_X86
from support.mindspore_adam import adam_no_update_param, bits

ms = pytest.importorskip("mindspore")
if not hasattr(ms.ops, "AdamNoUpdateParam"):
    pytest.skip("this MindSpore no longer ships ops.AdamNoUpdateParam", allow_module_level=True)

SIZES = list(range(1, 41)) + [63, 65, 127, 129, 1000, 4099, (1 << 16) + 7]
STEPS = 3
HYPER = dict(lr=1.0, beta1=0.9, beta2=0.999, eps=1e-8)


def powers(t):
    b1, b2 = np.float32(HYPER["beta1"]), np.float32(HYPER["beta2"])
    return dict(beta1_power=b1**t, beta2_power=b2**t)


def problem(n):
    """A start state and STEPS gradients of mixed scale, so both eps and large moments matter."""
    rng = np.random.default_rng(n)
    m = (rng.standard_normal(n) * 0.1).astype(np.float32)
    v = (np.abs(rng.standard_normal(n)) * 0.01).astype(np.float32)
    grads = [(rng.standard_normal(n) * 10.0 ** rng.integers(-4, 2, n)).astype(np.float32) for _ in range(STEPS)]
    return m, v, grads


def mindspore_run(n, nesterov):
    """MindSpore's (m, v, delta) after each step, every launch a single task."""
    m, v, grads = problem(n)
    out = []
    for t, g in enumerate(grads, start=1):
        m, v, d = adam_no_update_param(m, v, g, **HYPER, **powers(t), use_nesterov=nesterov)
        out.append((m, v, d))
    return out


def assert_same_bits(ours, theirs, what):
    diff = np.flatnonzero(bits(ours) != bits(theirs))
    assert diff.size == 0, f"{what}: {diff.size} elements differ, first at {diff[:8]} of {np.size(ours)}"


@NOT_MINDSPORE_X86
@pytest.mark.parametrize("nesterov", [False, True], ids=["plain", "nesterov"])
@pytest.mark.parametrize("n", SIZES)
def test_every_level_and_thread_count_matches_mindspore_bit_for_bit(n, nesterov, lab):
    expected = mindspore_run(n, nesterov)
    for isa in kernel.available_isas():
        for threads in (1, 2, 3):
            for stream in (False, True):
                kernel.set_isa(isa)
                kernel.set_num_threads(threads)
                lab.set_tuning(64, 0 if stream else 1 << 40)  # split small arrays over our threads too
                m, v, grads = problem(n)
                param = np.linspace(-1, 1, n, dtype=np.float32)
                for t, (g, (ms_m, ms_v, ms_d)) in enumerate(zip(grads, expected), start=1):
                    what = f"{isa}, {threads} threads, stream={stream}, step {t}"
                    m_apply, v_apply = m.copy(), v.copy()
                    d = kernel.adam_delta(m, v, g, **HYPER, **powers(t), use_nesterov=nesterov)
                    assert_same_bits(m, ms_m, f"moment1 ({what})")
                    assert_same_bits(v, ms_v, f"moment2 ({what})")
                    assert_same_bits(d, ms_d, f"delta ({what})")
                    # The host-apply path: the parameter as nn.AdamOffload's assign_add leaves it.
                    after = param + ms_d
                    kernel.adam_apply(param, m_apply, v_apply, g, **HYPER, **powers(t), use_nesterov=nesterov)
                    assert_same_bits(param, after, f"parameter ({what})")
                    assert_same_bits(m_apply, ms_m, f"moment1 of apply ({what})")
