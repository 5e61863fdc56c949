"""The 16-bit-parameter pass (adam_master_step): float64 reference, conversions, bits across levels."""
import numpy as np
import pytest
from mindspore.common.np_dtype import bfloat16

from mindspore_offload import kernel
from support.host import large
from support.levels import every_level_and_thread_count
from support.reference import adam_reference, assert_step_close

SIZES = [1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 1000, 4099, large((1 << 20) + 5)]
HALVES = {"float16": np.float16, "bfloat16": bfloat16}
HYPER = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8)
STEPS = 3
# (weight_decay, grad_scale): as the optimizer passes them (decay is wd * loss_scale in MindSpore)
PREPS = [(None, None), (0.01 * 128.0, 1.0 / 128.0)]


def to_bfloat16_bits(x):
    """Round-to-nearest-even float32 -> bfloat16 bits in NumPy integer code (NaN: quiet, top payload)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = (bits & 0x7FFFFFFF) > 0x7F800000
    return np.where(nan, ((bits >> 16) | 0x40).astype(np.uint16), rounded)


def to_float16_bits(x):
    """NumPy's float32 -> float16 (round to nearest even), with NaNs quietened as F16C does."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        bits = x.astype(np.float16).view(np.uint16)
    nan_bits = ((x.view(np.uint32) >> 16) & 0x8000) | 0x7E00 | ((x.view(np.uint32) >> 13) & 0x3FF)
    return np.where(np.isnan(x), nan_bits.astype(np.uint16), bits)


def narrow_bits(half, x):
    return to_float16_bits(x) if half == "float16" else to_bfloat16_bits(x)


def widen(g16):
    return g16.astype(np.float32) if g16.dtype == np.float16 else (g16.view(np.uint16).astype(np.uint32) << 16).view(np.float32)


def exact_float64(x32):
    """float32 values as float64, made from their bits with float64 arithmetic on normal numbers only: the
    float32 -> float64 conversion would flush a subnormal under flush-to-zero (FPCR.FZ, which importing
    MindSpore turns on in this thread on aarch64). Non-finite elements give meaningless values."""
    bits = np.ascontiguousarray(x32, dtype=np.float32).view(np.uint32)
    exponent = ((bits >> 23) & 0xFF).astype(np.int32)
    fraction = (bits & 0x7FFFFF).astype(np.float64)
    magnitude = np.where(exponent == 0, np.ldexp(fraction, -149), np.ldexp(fraction + 2.0**23, exponent - 150))
    return np.where(bits >> 31 == 1, -magnitude, magnitude)


def float32_bits(x64):
    """Finite float64 values rounded to nearest even float32, as bits, subnormals kept whatever this thread's
    flush-to-zero: below 2^-126 the rounding is done on the count of 2^-149 steps (a float64 integer)."""
    x64 = np.asarray(x64, dtype=np.float64)
    tiny = np.abs(x64) < 2.0**-126
    normal = np.where(tiny, 1.0, x64).astype(np.float32).view(np.uint32)
    steps = np.rint(np.abs(np.where(tiny, x64, 0.0)) * 2.0**149).astype(np.uint32)  # 2^23 is 2^-126's bits
    subnormal = steps | (np.signbit(x64).astype(np.uint32) << 31)
    return np.where(tiny, subnormal, normal)


def make_state(n, seed, half):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(n).astype(np.float32)
    m = (rng.standard_normal(n) * 0.1).astype(np.float32)
    v = (np.abs(rng.standard_normal(n)) * 0.01).astype(np.float32)
    return w, m, v


def gradients(n, seed, half, steps=STEPS):
    rng = np.random.default_rng(seed + 1)
    return [(rng.standard_normal(n) * 10.0 ** rng.integers(-3, 2)).astype(np.float32).astype(HALVES[half])
            for _ in range(steps)]


def run_steps(n, half, *, nesterov, prep, seed=0, check=True):
    w, m, v = make_state(n, seed, half)
    wd, scale = prep
    outs = []
    for t, g16 in enumerate(gradients(n, seed, half), start=1):
        powers = dict(beta1_power=HYPER["beta1"] ** t, beta2_power=HYPER["beta2"] ** t)
        g = widen(g16)  # what the float32 path would be handed, then decayed and unscaled in float32
        if wd is not None:
            g = w * np.float32(wd) + g
        if scale is not None:
            g = g * np.float32(scale)
        ref = adam_reference(m, v, g, use_nesterov=nesterov, **HYPER, **powers) if check else None
        w_before = w.copy()
        out = kernel.adam_master_step(w, m, v, g16, use_nesterov=nesterov, weight_decay=wd, grad_scale=scale,
                                      **HYPER, **powers)
        if check:
            assert out.dtype == g16.dtype
            # the master moved by the float64 step, within its bound and half an ulp of the addition
            assert_step_close(m, v, w - w_before, (ref[0], ref[1], ref[2], ref[3] + np.spacing(np.abs(w)), ref[4]))
            np.testing.assert_array_equal(out.view(np.uint16), narrow_bits(half, w))
        outs.append(out.view(np.uint16).copy())
    return w, m, v, outs


@pytest.mark.parametrize("prep", PREPS, ids=["plain", "decay+unscale"])
@pytest.mark.parametrize("nesterov", [False, True], ids=["adam", "nesterov"])
@pytest.mark.parametrize("half", HALVES)
@pytest.mark.parametrize("isa", kernel.available_isas())
@pytest.mark.parametrize("n", SIZES)
def test_matches_float64_reference(n, isa, half, nesterov, prep):
    kernel.set_isa(isa)
    run_steps(n, half, nesterov=nesterov, prep=prep, seed=n)


@pytest.mark.parametrize("half", HALVES)
@pytest.mark.parametrize("n", SIZES)
def test_every_level_and_thread_count_gives_the_same_bits(n, half, lab):
    results = {key: run_steps(n, half, nesterov=True, prep=PREPS[1], seed=n, check=False)
               for key in every_level_and_thread_count(lab)}
    first = next(iter(results.values()))
    for key, result in results.items():
        for a, b in zip(result[:3], first[:3]):
            assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), key
        for a, b in zip(result[3], first[3]):
            assert np.array_equal(a, b), key


def special_floats():
    """Every float32 exponent and sign with mantissas at and around the 16-bit rounding points, the
    float32 denormals, infinities and NaNs with payloads."""
    high = np.arange(1 << 19, dtype=np.uint32) << 13
    lows = np.array([0, 1, 0x7FF, 0x800, 0x801, 0xFFF, 0x1000, 0x1001, 0x1FFF], dtype=np.uint32)
    bits = (high[:, None] | lows[None, :]).ravel()
    bits = np.concatenate([bits, np.arange(0, 1 << 23, 997, dtype=np.uint32), bits[::7] | 0x55])
    return bits.view(np.float32)


@pytest.mark.parametrize("half", HALVES)
def test_narrowing_matches_round_to_nearest_even_at_every_level(half):
    """lr = 0 and a zero gradient leave the master as it is (master + -0), so out is its rounding."""
    masters = special_floats()
    n = masters.size
    results = {}
    for isa in kernel.available_isas():
        kernel.set_isa(isa)
        w, m, v = masters.copy(), np.zeros(n, np.float32), np.zeros(n, np.float32)
        out = kernel.adam_master_step(w, m, v, np.zeros(n, HALVES[half]), lr=0.0, beta1=0.9, beta2=0.999, eps=1e-8,
                                      beta1_power=0.9, beta2_power=0.999)
        quiet = masters.view(np.uint32) | np.where(np.isnan(masters), 0x400000, 0).astype(np.uint32)
        assert np.array_equal(w.view(np.uint32), quiet)  # untouched, but for the add quietening NaNs
        results[isa] = out.view(np.uint16).copy()
        np.testing.assert_array_equal(results[isa], narrow_bits(half, w))
    assert all(np.array_equal(r, results["scalar"]) for r in results.values())


@pytest.mark.parametrize("half", HALVES)
def test_widening_is_exact_at_every_level(half):
    """Every 16-bit pattern as a gradient: m = (1 - beta1) * g shows the widened value (NaN payloads too)."""
    g16 = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(HALVES[half])
    n = g16.size
    c1 = np.float32(1.0) - np.float32(0.9)
    g = widen(g16)
    finite = np.isfinite(g)
    # fma(m=0, beta1, c1 * g) is c1 * g rounded once (-0 becomes +0). The reference is computed exactly, not
    # in float32: with flush-to-zero on in this thread (aarch64 after MindSpore's import) NumPy's float32
    # product would flush the subnormal products (bfloat16's subnormals times c1) that the kernel keeps.
    # float32 * float32 is exact in float64 (48 significant bits), so one rounding to float32 follows.
    expected = float32_bits(np.float64(c1) * exact_float64(g[finite]))
    expected[expected == 0x80000000] = 0
    results = {}
    for isa in kernel.available_isas():
        kernel.set_isa(isa)
        w, m, v = np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(n, np.float32)
        with np.errstate(invalid="ignore", over="ignore"):
            kernel.adam_master_step(w, m, v, g16, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, beta1_power=0.9,
                                    beta2_power=0.999)
        np.testing.assert_array_equal(m[finite].view(np.uint32), expected)
        assert np.array_equal(np.isnan(m), np.isnan(g)) and np.array_equal(np.isinf(m), np.isinf(g))
        results[isa] = (w.view(np.uint32).copy(), m.view(np.uint32).copy(), v.view(np.uint32).copy())
    for r in results.values():
        assert all(np.array_equal(a, b) for a, b in zip(r, results["scalar"]))


def test_out_may_be_the_parameter_and_errors_write_nothing():
    w, m, v = make_state(33, 0, "float16")
    param = w.astype(np.float16)
    g = np.ones(33, np.float16)
    out = kernel.adam_master_step(w, m, v, g, out=param, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, beta1_power=0.9,
                                  beta2_power=0.999)
    assert out is param and np.array_equal(param, w.astype(np.float16))
    before = [a.copy() for a in (w, m, v, param)]
    bad_calls = [
        (TypeError, "float16 or bfloat16", dict(grad=g.astype(np.float32))),
        (TypeError, "gradient's dtype", dict(out=np.zeros(33, bfloat16))),
        (ValueError, "shape", dict(grad=np.ones(32, np.float16))),
        (ValueError, "share memory", dict(out=param, m=w)),
        (ValueError, "beta1_power", dict(beta1_power=1.0)),
    ]
    for error, match, change in bad_calls:
        call = dict(master=w, m=m, v=v, grad=g, out=param, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                    beta1_power=0.9, beta2_power=0.999)
        call.update(change)
        with pytest.raises(error, match=match):
            kernel.adam_master_step(call.pop("master"), call.pop("m"), call.pop("v"), call.pop("grad"), **call)
        for a, b in zip(before, (w, m, v, param)):
            assert np.array_equal(a.view(np.uint8), b.view(np.uint8))


def written_parameter(w, half, seed):
    """The 16-bit parameter after a write since the last step: the master rounded, with about a third of
    the elements overwritten with new values and a sixth rewritten with the value they already had."""
    rng = np.random.default_rng(seed)
    bits = narrow_bits(half, w)
    pick = rng.integers(0, 6, w.size)
    new = narrow_bits(half, rng.standard_normal(w.size).astype(np.float32))
    bits = np.where(pick < 2, new, bits)
    bits[0] ^= 1  # at least one element written, whatever the draw
    return bits.view(HALVES[half])


@pytest.mark.parametrize("half", HALVES)
@pytest.mark.parametrize("isa", kernel.available_isas())
@pytest.mark.parametrize("n", SIZES)
def test_a_written_parameter_restarts_its_master(n, isa, half):
    """Where the parameter differs from the master rounded, the pass starts from the parameter widened;
    elsewhere from the master: the same bits as a pass without param from that starting master."""
    kernel.set_isa(isa)
    w, m, v = make_state(n, n, half)
    param = written_parameter(w, half, n)
    written = param.view(np.uint16) != narrow_bits(half, w)
    start = np.where(written, widen(param), w)
    assert written[0]
    g = gradients(n, n, half, steps=1)[0]
    hyper = dict(HYPER, beta1_power=0.9**3, beta2_power=0.999**3, weight_decay=0.5, grad_scale=0.25)
    expect_w, expect_m, expect_v = start.copy(), m.copy(), v.copy()
    expect = kernel.adam_master_step(expect_w, expect_m, expect_v, g, use_nesterov=True, **hyper)
    before = param.copy()
    out = kernel.adam_master_step(w, m, v, g, param=param, use_nesterov=True, **hyper)
    assert np.array_equal(param.view(np.uint16), before.view(np.uint16))  # read, not written
    for got, exp in ((w, expect_w), (m, expect_m), (v, expect_v)):
        assert np.array_equal(got.view(np.uint32), exp.view(np.uint32))
    assert np.array_equal(out.view(np.uint16), expect.view(np.uint16))


@pytest.mark.parametrize("half", HALVES)
@pytest.mark.parametrize("n", [1, 9, 33, 4099])
def test_an_unwritten_parameter_changes_nothing_and_may_be_out(n, half):
    """param equal to the master rounded: the bits of a pass without param, also when param is out."""
    results = []
    for param_given in (None, "separate", "out"):
        w, m, v = make_state(n, n, half)
        param = narrow_bits(half, w).view(HALVES[half])
        g = gradients(n, n, half, steps=1)[0]
        call = dict(HYPER, beta1_power=0.9, beta2_power=0.999)
        if param_given == "separate":
            call["param"] = param
        elif param_given == "out":
            call.update(param=param, out=param)
        out = kernel.adam_master_step(w, m, v, g, **call)
        results.append([a.view(np.uint32).copy() for a in (w, m, v)] + [out.view(np.uint16).copy()])
    for result in results[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(result, results[0]))


@pytest.mark.parametrize("half", HALVES)
@pytest.mark.parametrize("n", [17, 4099, (1 << 20) + 5])
def test_a_written_parameter_gives_the_same_bits_at_every_level_and_thread_count(n, half, lab):
    results = {}
    for key in every_level_and_thread_count(lab):
        w, m, v = make_state(n, n, half)
        param = written_parameter(w, half, n)
        out = kernel.adam_master_step(w, m, v, gradients(n, n, half, steps=1)[0], param=param, out=param,
                                      weight_decay=0.5, **HYPER, beta1_power=0.9, beta2_power=0.999)
        results[key] = [a.view(np.uint32).copy() for a in (w, m, v)] + [out.view(np.uint16).copy()]
    first = next(iter(results.values()))
    for key, result in results.items():
        assert all(np.array_equal(a, b) for a, b in zip(result, first)), key
