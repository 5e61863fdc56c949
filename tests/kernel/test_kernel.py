"""The host kernel against a float64 reference, at every level and thread count, element by element."""
import platform

import numpy as np
import pytest

from mindspore_offload import kernel
from support.host import large
from support.levels import every_level_and_thread_count
from support.reference import adam_reference, assert_step_close

SIZES = [0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 1000, 4099, large((1 << 20) + 5)]
HYPER = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8)
STEPS = 4


def make_state(n, seed):
    rng = np.random.default_rng(seed)
    grad = rng.standard_normal(n).astype(np.float32)
    m = (rng.standard_normal(n) * 0.1).astype(np.float32)
    v = (np.abs(rng.standard_normal(n)) * 0.01).astype(np.float32)
    return m, v, grad


def run_steps(n, *, nesterov, seed=0, hyper=HYPER, check=True):
    """STEPS steps with fresh gradients; each checked against the float64 step from the same state."""
    m, v, _ = make_state(n, seed)
    rng = np.random.default_rng(seed + 1)
    deltas = []
    for t in range(1, STEPS + 1):
        grad = rng.standard_normal(n).astype(np.float32) * np.float32(10.0 ** rng.integers(-3, 2))
        powers = dict(beta1_power=hyper["beta1"] ** t, beta2_power=hyper["beta2"] ** t)
        ref = adam_reference(m, v, grad, use_nesterov=nesterov, **hyper, **powers) if check else None
        delta = kernel.adam_delta(m, v, grad, use_nesterov=nesterov, **hyper, **powers)
        if check:
            assert_step_close(m, v, delta, ref)
        deltas.append(delta)
    return m, v, deltas


@pytest.mark.parametrize("nesterov", [False, True], ids=["plain", "nesterov"])
@pytest.mark.parametrize("isa", kernel.available_isas())
@pytest.mark.parametrize("n", SIZES)
def test_matches_float64_reference(n, isa, nesterov):
    kernel.set_isa(isa)
    m, v, deltas = run_steps(n, nesterov=nesterov, seed=n)
    assert m.shape == v.shape == deltas[-1].shape == (n,)


@pytest.mark.parametrize("nesterov", [False, True], ids=["plain", "nesterov"])
@pytest.mark.parametrize("n", SIZES)
def test_every_level_thread_count_and_store_kind_gives_the_same_bits(n, nesterov, lab):
    results = {}
    for isa in kernel.available_isas():
        for threads in (1, 2, 3):
            for stream in (False, True):
                kernel.set_isa(isa)
                kernel.set_num_threads(threads)
                lab.set_tuning(64, 0 if stream else 1 << 40)  # split small arrays too; stream or not
                results[(isa, threads, stream)] = run_steps(n, nesterov=nesterov, seed=n, check=False)
    first_key, (m0, v0, d0) = next(iter(results.items()))
    for key, (m, v, d) in results.items():
        assert np.array_equal(m, m0) and np.array_equal(v, v0), (key, first_key)
        for a, b in zip(d, d0):
            assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), (key, first_key)


@pytest.mark.parametrize("isa", kernel.available_isas())
def test_unaligned_views_and_out_buffer(isa, lab):
    kernel.set_isa(isa)
    lab.set_tuning(64, 0)  # streaming stores need the alignment head to be right
    base_m, base_v, base_g = make_state(1000, 3)
    out_base = np.zeros(1001, np.float32)
    for offset in range(1, 16):
        m, v, g = base_m[offset:].copy(), base_v[offset:].copy(), base_g[offset:]
        out = out_base[1:][: m.size]
        ref = adam_reference(m, v, g, beta1_power=0.9, beta2_power=0.999, **HYPER)
        result = kernel.adam_delta(m, v, g, beta1_power=0.9, beta2_power=0.999, out=out, **HYPER)
        assert result is out
        assert_step_close(m, v, out, ref)
    assert out_base[0] == 0.0


def test_non_default_hyper_parameters_and_shapes():
    hyper = dict(lr=0.05, beta1=0.5, beta2=0.9, eps=1e-3)
    m, v, g = (x.reshape(7, 11, 13) for x in make_state(7 * 11 * 13, 5))
    ref = adam_reference(m, v, g, beta1_power=0.5**7, beta2_power=0.9**7, use_nesterov=True, **hyper)
    d = kernel.adam_delta(m, v, g, beta1_power=0.5**7, beta2_power=0.9**7, use_nesterov=True, **hyper)
    assert d.shape == (7, 11, 13)
    assert_step_close(m, v, d, ref)


def test_long_run_stays_within_float32_rounding_of_float64():
    """1000 steps of the same state: the float32 run tracks a float64 run of the same formula."""
    n = 4099
    m, v, _ = make_state(n, 11)
    m64, v64 = m.astype(np.float64), v.astype(np.float64)
    rng = np.random.default_rng(12)
    b1, b2 = np.float64(np.float32(0.9)), np.float64(np.float32(0.999))
    worst = 0.0
    for t in range(1, 1001):
        g = rng.standard_normal(n).astype(np.float32)
        b1p, b2p = np.float32(0.9) ** t, np.float32(0.999) ** t
        d = kernel.adam_delta(m, v, g, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, beta1_power=b1p, beta2_power=b2p)
        m64, v64, d64, _, _ = adam_reference(m64, v64, g, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                                             beta1_power=b1p, beta2_power=b2p)
        scale = 1e-3 * np.sqrt(1 - np.float64(b2p)) / (1 - np.float64(b1p))
        worst = max(worst, float(np.max(np.abs(d - d64)) / scale))
    # m and v are exponential averages: rounding errors decay instead of growing.
    np.testing.assert_allclose(m, m64, rtol=0, atol=1e-5 * np.max(np.abs(m64)))
    np.testing.assert_allclose(v, v64, rtol=2e-5)
    assert worst < 1e-3, worst


def test_threads_api():
    kernel.set_num_threads(3)
    assert kernel.get_num_threads() == 3
    with pytest.raises(ValueError, match=r"'n' must be in range \[1, 1024\], but got 0"):
        kernel.set_num_threads(0)
    with pytest.raises(TypeError, match="'n' must be an int"):
        kernel.set_num_threads(2.0)


def test_set_isa_and_available():
    assert kernel.available_isas()[-1] == "scalar"
    for isa in kernel.available_isas():
        kernel.set_isa(isa)
        assert kernel.active_isa() == isa
    built = {"x86_64": "'avx512', 'avx2', 'scalar'", "aarch64": "'neon', 'scalar'"}[platform.machine()]
    with pytest.raises(ValueError, match=f"must be one of {built}, but got 'sse9'"):
        kernel.set_isa("sse9")


@pytest.mark.parametrize("nesterov", [False, True], ids=["plain", "nesterov"])
@pytest.mark.parametrize("n", SIZES)
def test_apply_equals_delta_then_add_at_every_level(n, nesterov, lab):
    """adam_apply (param += delta in the same pass) gives the bits of param + adam_delta(...)."""
    m0, v0, g = make_state(n, 21)
    param0 = np.random.default_rng(22).standard_normal(n).astype(np.float32)
    hyper = dict(beta1_power=0.9**5, beta2_power=0.999**5, use_nesterov=nesterov, **HYPER)
    m, v = m0.copy(), v0.copy()
    expected = param0 + kernel.adam_delta(m, v, g, **hyper)
    for isa, threads in every_level_and_thread_count(lab, (1, 2)):
        mi, vi, param = m0.copy(), v0.copy(), param0.copy()
        assert kernel.adam_apply(param, mi, vi, g, **hyper) is param
        assert np.array_equal(param, expected), (isa, threads)
        assert np.array_equal(mi, m) and np.array_equal(vi, v), (isa, threads)
