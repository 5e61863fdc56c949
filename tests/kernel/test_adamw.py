"""The AdamW kernel (adamw_step, adamw_master_step), in both roundings, against a float64 reference at every
level and thread count, element by element; the "float32" rounding bit for bit against its formula
rounded operation by operation; the 16-bit pass's master against the float32 pass fed the widened
gradient."""
import numpy as np
import pytest
from mindspore.common.np_dtype import bfloat16

from mindspore_offload import kernel
from support.levels import every_level_and_thread_count
from support.reference import adamw_float32_reference, adamw_reference, assert_adamw_close

SIZES = [1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 1000, 4099]
HYPER = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-6)
DECAYS = [0.0, 0.01, 0.3]
STEPS = 4
HALVES = {"float16": np.float16, "bfloat16": bfloat16}
ROUNDINGS = ["double", "float32"]


def make_state(n, seed):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(n).astype(np.float32)
    m = (rng.standard_normal(n) * 0.1).astype(np.float32)
    v = (np.abs(rng.standard_normal(n)) * 0.01).astype(np.float32)
    return w, m, v


def gradients(n, seed):
    """STEPS gradients of mixed scale, so both eps and large moments matter."""
    rng = np.random.default_rng(seed + 1)
    return [(rng.standard_normal(n) * 10.0 ** rng.integers(-4, 2, n)).astype(np.float32) for _ in range(STEPS)]


def run(n, decay, seed, check, rounding="double"):
    w, m, v = make_state(n, seed)
    out = []
    for g in gradients(n, seed):
        ref = adamw_reference(w, m, v, g, weight_decay=decay, **HYPER) if check else None
        kernel.adamw_step(w, m, v, g, weight_decay=decay, rounding=rounding, **HYPER)
        if check:
            assert_adamw_close(w, m, v, ref)
        out.append((w.copy(), m.copy(), v.copy()))
    return out


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("decay", DECAYS)
@pytest.mark.parametrize("isa", kernel.available_isas())
@pytest.mark.parametrize("n", SIZES)
def test_matches_float64_reference(n, isa, decay, rounding):
    kernel.set_isa(isa)
    run(n, decay, seed=n, check=True, rounding=rounding)


@pytest.mark.parametrize("decay", DECAYS)
@pytest.mark.parametrize("isa", kernel.available_isas())
@pytest.mark.parametrize("n", SIZES)
def test_float32_rounding_is_its_formula_bit_for_bit(n, isa, decay):
    """Every operation of the vector body's formula rounded to float32 (fma32 for the fused ones), and
    the two roundings really differ: the flag reaches the kernel."""
    kernel.set_isa(isa)
    w, m, v = make_state(n, n)
    w2, m2, v2 = w.copy(), m.copy(), v.copy()
    differ = 0
    for g in gradients(n, n):
        expected = adamw_float32_reference(w, m, v, g, weight_decay=decay, **HYPER)
        kernel.adamw_step(w, m, v, g, weight_decay=decay, rounding="float32", **HYPER)
        for got, want in zip((w, m, v), expected):
            assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
        kernel.adamw_step(w2, m2, v2, g, weight_decay=decay, rounding="double", **HYPER)
        differ += np.count_nonzero(w.view(np.uint32) != w2.view(np.uint32))
        w2, m2, v2 = w.copy(), m.copy(), v.copy()
    if n >= 1000:
        assert differ > 0


def test_reference_catches_a_wrong_step():
    """The bound is tight enough to see a step of the wrong sign of decay."""
    w, m, v = make_state(1000, 1)
    g = gradients(1000, 1)[0]
    ref = adamw_reference(w, m, v, g, weight_decay=0.3, **HYPER)
    kernel.adamw_step(w, m, v, g, weight_decay=0.0, **HYPER)
    with pytest.raises(AssertionError):
        assert_adamw_close(w, m, v, ref)


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("n", SIZES + [(1 << 18) + 5])
def test_every_level_and_thread_count_gives_the_same_bits(n, lab, rounding):
    results = {key: run(n, 0.01, seed=n, check=False, rounding=rounding)
               for key in every_level_and_thread_count(lab, (1, 2, 3))}
    first_key, first = next(iter(results.items()))
    for key, steps in results.items():
        for a, b in zip(steps, first):
            for x, y in zip(a, b):
                assert np.array_equal(x.view(np.uint32), y.view(np.uint32)), (key, first_key)


@pytest.mark.parametrize("isa", kernel.available_isas())
def test_out_array_leaves_the_parameter_and_gives_the_in_place_bits(isa):
    kernel.set_isa(isa)
    w, m, v = make_state(1001, 5)
    g = gradients(1001, 5)[0]
    w2, m2, v2 = w.copy(), m.copy(), v.copy()
    out = np.empty_like(w)
    assert kernel.adamw_step(w, m, v, g, out=out, weight_decay=0.1, **HYPER) is out
    assert kernel.adamw_step(w2, m2, v2, g, weight_decay=0.1, **HYPER) is w2
    assert np.array_equal(out.view(np.uint32), w2.view(np.uint32))
    assert np.array_equal(m, m2) and np.array_equal(v, v2)
    assert not np.array_equal(w, w2)  # the parameter itself was only read


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("half", sorted(HALVES))
@pytest.mark.parametrize("isa", kernel.available_isas())
@pytest.mark.parametrize("n", SIZES)
def test_master_follows_the_float32_step_fed_the_widened_gradient(n, isa, half, rounding):
    kernel.set_isa(isa)
    dtype = HALVES[half]
    w, m, v = make_state(n, n)
    w = w.astype(dtype).astype(np.float32)  # a master made from a 16-bit parameter
    master, m16, v16 = w.copy(), m.copy(), v.copy()
    param = w.astype(dtype)
    for g in gradients(n, n):
        g16 = g.astype(dtype)
        kernel.adamw_step(w, m, v, g16.astype(np.float32), weight_decay=0.01, rounding=rounding, **HYPER)
        kernel.adamw_master_step(master, m16, v16, g16, out=param, param=param, weight_decay=0.01,
                                 rounding=rounding, **HYPER)
        assert np.array_equal(master.view(np.uint32), w.view(np.uint32))
        assert np.array_equal(m16.view(np.uint32), m.view(np.uint32))
        assert np.array_equal(v16.view(np.uint32), v.view(np.uint32))
        assert np.array_equal(param.view(np.uint16), w.astype(dtype).view(np.uint16))


@pytest.mark.parametrize("n", [17, 4099])
def test_master_pass_restarts_where_the_parameter_was_written(n):
    w, m, v = make_state(n, 2)
    master = w.astype(np.float16).astype(np.float32)
    param = master.astype(np.float16)
    param[::3] = np.float16(0.5)
    g = gradients(n, 2)[0].astype(np.float16)
    expected = master.copy()
    expected[::3] = 0.5
    m2, v2 = m.copy(), v.copy()
    kernel.adamw_step(expected, m2, v2, g.astype(np.float32), **HYPER)
    kernel.adamw_master_step(master, m, v, g, param=param, out=param, **HYPER)
    assert np.array_equal(master.view(np.uint32), expected.view(np.uint32))


ERRORS = [
    (dict(lr=-1.0), ValueError, "the 'lr' must be in range"),
    (dict(beta1=1.0), ValueError, "the 'beta1' must be in range"),
    (dict(beta2=0.0), ValueError, "the 'beta2' must be in range"),
    (dict(eps=0.0), ValueError, "the 'eps' must be in range"),
    (dict(weight_decay=-0.1), ValueError, "the 'weight_decay' must be in range"),
    (dict(weight_decay=float("inf")), ValueError, "the 'weight_decay' must be finite"),
    (dict(lr="1"), TypeError, "the 'lr' must be a float"),
    (dict(use_locking=1), TypeError, "the 'use_locking' must be a bool"),
    (dict(rounding="float64"), ValueError, "the 'rounding' must be 'double' or 'float32'"),
    (dict(rounding=None), TypeError, "the 'rounding' must be a str"),
]


@pytest.mark.parametrize("change, error, message", ERRORS)
def test_errors_write_nothing(change, error, message):
    w, m, v = make_state(9, 0)
    g = gradients(9, 0)[0]
    before = [x.copy() for x in (w, m, v)]
    kwargs = {**HYPER, "weight_decay": 0.01, **change}
    with pytest.raises(error, match=message):
        kernel.adamw_step(w, m, v, g, **kwargs)
    for x, y in zip((w, m, v), before):
        assert np.array_equal(x, y)


def test_array_errors():
    w, m, v = make_state(9, 0)
    g = gradients(9, 0)[0]
    with pytest.raises(TypeError, match="must be a float32 array"):
        kernel.adamw_step(w.astype(np.float64), m, v, g, **HYPER)
    with pytest.raises(ValueError, match="must have the shape of 'm'"):
        kernel.adamw_step(w[:8], m, v, g, **HYPER)
    with pytest.raises(ValueError, match="share memory"):
        kernel.adamw_step(w, m, m, g, **HYPER)
    with pytest.raises(TypeError, match="must be a float16 or bfloat16"):
        kernel.adamw_master_step(w, m, v, g, **HYPER)
