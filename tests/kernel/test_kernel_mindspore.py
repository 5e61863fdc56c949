"""Our kernel against MindSpore's own ops.AdamNoUpdateParam on the same inputs (while MindSpore has it).

Bit-for-bit tests of the leftover elements: tests/kernel/test_leftover_mindspore.py."""
import subprocess
import sys

import numpy as np
import pytest

from support.host import NOT_MINDSPORE_X86
from support.mindspore_adam import UNSPLIT_LAUNCHES, adam_no_update_param, bits
from mindspore_offload import kernel

ms = pytest.importorskip("mindspore")
if not hasattr(ms.ops, "AdamNoUpdateParam"):
    pytest.skip("this MindSpore no longer ships ops.AdamNoUpdateParam", allow_module_level=True)

EPS32 = np.finfo(np.float32).eps


@NOT_MINDSPORE_X86
@pytest.mark.parametrize("nesterov", [False, True], ids=["plain", "nesterov"])
@pytest.mark.parametrize("n", [9, 20, 33, 64, 1000, 4099, 1 << 16])
def test_bit_identical_on_single_task_launches_and_bounded_at_mindspore_task_edges(n, nesterov):
    """One MindSpore kernel (a shape of its own) for 15 launches: the first five run as one task and
    match ours in every bit; the next ten split the tensor over MindSpore's threads, whose task edges
    add leftover elements it rounds its scalar way and we round as its vector body does. There m
    differs by at most 1.5 eps of its terms (two roundings each side), v by an ulp or two, and delta
    by at most 4 eps of its terms (measured: 1.0, 1 ulp and 3.0; in ulps of the result that is up to
    76 where m cancels, 5 where it does not)."""
    shape = (1,) * (2 if nesterov else 1) + (n,) + (1,) * 4  # ranks no other test gives this kernel
    rng = np.random.default_rng(n)
    for launch in range(15):
        m = (rng.standard_normal(n) * 10.0 ** rng.integers(-3, 1, n)).astype(np.float32)
        v = (np.abs(rng.standard_normal(n)) * 10.0 ** rng.integers(-6, 0, n)).astype(np.float32)
        g = (rng.standard_normal(n) * 10.0 ** rng.integers(-4, 2, n)).astype(np.float32)
        t = int(rng.integers(1, 50))
        hyper = dict(beta1_power=np.float32(0.9) ** t, beta2_power=np.float32(0.999) ** t, lr=1.0, beta1=0.9,
                     beta2=0.999, eps=1e-8)
        ms_m, ms_v, ms_d = adam_no_update_param(m, v, g, **hyper, use_nesterov=nesterov, shape=shape)
        m_terms = np.abs(0.9 * m.astype(np.float64)) + np.abs(0.1 * g.astype(np.float64))
        d = kernel.adam_delta(m, v, g, **hyper, use_nesterov=nesterov)
        if launch < UNSPLIT_LAUNCHES:
            for ours, theirs in ((m, ms_m), (v, ms_v), (d, ms_d)):
                assert np.array_equal(bits(ours), bits(theirs)), f"launch {launch}"
            continue
        assert np.all(np.abs(m - ms_m.astype(np.float64)) <= 1.5 * EPS32 * m_terms), f"launch {launch}"
        assert np.all(np.abs(v - ms_v.astype(np.float64)) <= 2 * EPS32 * ms_v), f"launch {launch}"
        lr_t = np.sqrt(1 - np.float64(hyper["beta2_power"])) / (1 - np.float64(hyper["beta1_power"]))
        num_terms = 1.9 * m_terms + np.abs(0.1 * g) if nesterov else m_terms
        allowed = 4 * EPS32 * lr_t * num_terms / (np.sqrt(ms_v.astype(np.float64)) + 1e-8)
        assert np.all(np.abs(d - ms_d.astype(np.float64)) <= allowed), f"launch {launch}"
        if n >= 1000:
            assert np.mean(d == ms_d) > 0.99  # only MindSpore's task edges differ


@pytest.mark.parametrize("value", ["avx1024", "AVX512 "])
def test_bad_isa_environment_fails_at_import(value):
    code = "import mindspore_offload.kernel"
    proc = subprocess.run([sys.executable, "-c", code], env={"MINDSPORE_OFFLOAD_ISA": value, **_base_env()},
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "MINDSPORE_OFFLOAD_ISA must be one of 'avx512', 'avx2', 'neon', 'scalar'" in proc.stderr


@pytest.mark.parametrize("isa", kernel.available_isas())
def test_isa_environment_forces_level(isa):
    code = "import mindspore_offload.kernel as k; print(k.active_isa())"
    proc = subprocess.run([sys.executable, "-c", code], env={"MINDSPORE_OFFLOAD_ISA": isa, **_base_env()},
                          capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == isa


def test_bad_thread_environment_fails_at_import():
    code = "import mindspore_offload.kernel"
    proc = subprocess.run([sys.executable, "-c", code],
                          env={"MINDSPORE_OFFLOAD_NUM_THREADS": "zero", **_base_env()}, capture_output=True, text=True)
    assert proc.returncode != 0 and "MINDSPORE_OFFLOAD_NUM_THREADS" in proc.stderr


def _base_env():
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("MINDSPORE_OFFLOAD_")}
