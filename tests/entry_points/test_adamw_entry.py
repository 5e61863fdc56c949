"""The AdamWOffload* entry points, called through ctypes as MindSpore's CPU backend calls them: the same
bits as kernel.adamw_step / adamw_master_step, in place or returned, whole or sliced, and the return codes
of custom_op.h with nothing written."""
import numpy as np
import pytest
from mindspore.common.np_dtype import bfloat16

from mindspore_offload import kernel
from support.entry_points import call, with_fault

HYPER = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=0.05)
HALVES = {"float16": np.float16, "bfloat16": bfloat16}


def scalars():
    return [np.full((), HYPER[k], np.float32) for k in ("lr", "beta1", "beta2", "eps", "weight_decay")]


def state(n, seed=0):
    rng = np.random.default_rng(seed + n)
    w = rng.standard_normal(n).astype(np.float32)
    m = (rng.standard_normal(n) * 0.1).astype(np.float32)
    v = (np.abs(rng.standard_normal(n)) * 0.01).astype(np.float32)
    g = (rng.standard_normal(n) * 10.0 ** rng.integers(-3, 1, n)).astype(np.float32)
    return w, m, v, g


def bits(x):
    return x.view(np.uint16 if x.dtype.itemsize == 2 else np.uint32)


# Each entry's variants (custom_op.h) and the rounding its name picks.
VARIANTS = {"": "double", "Locked": "double", "Float32": "float32", "Float32Locked": "float32"}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("n", [1, 17, 4099])
def test_step_returns_and_apply_writes_the_kernels_bits(n, variant):
    w, m, v, g = state(n)
    expected_m, expected_v = m.copy(), v.copy()
    expected = kernel.adamw_step(w.copy(), expected_m, expected_v, g, rounding=VARIANTS[variant], **HYPER)
    other_rounding = "double" if VARIANTS[variant] == "float32" else "float32"
    other = kernel.adamw_step(w.copy(), m.copy(), v.copy(), g, rounding=other_rounding, **HYPER)
    out, m1, v1 = np.empty_like(w), m.copy(), v.copy()
    assert call(f"AdamWOffloadStep{variant}", [w, m1, v1, *scalars(), g, out]) == 0
    assert np.array_equal(bits(out), bits(expected)) and np.array_equal(m1, expected_m)
    assert np.array_equal(v1, expected_v)
    param, done = w.copy(), np.full((1,), 7.0, np.float32)
    assert call(f"AdamWOffloadApply{variant}", [param, m.copy(), v.copy(), *scalars(), g, done]) == 0
    assert np.array_equal(bits(param), bits(expected)) and done[0] == 0.0
    if n > 1000:  # the other rounding gives other bits: the name really picks the formula
        assert not np.array_equal(bits(out), bits(other))


@pytest.mark.parametrize("ranks", [2, 3])
@pytest.mark.parametrize("size", [7, 1023, 4099])
def test_step_on_slices_gives_the_whole_tensors_bits(size, ranks):
    w, m, v, g = state(size, 1)
    whole = kernel.adamw_step(w.copy(), m.copy(), v.copy(), g, **HYPER)
    k = -(-size // ranks)
    pad = lambda x: np.concatenate([x, np.zeros(ranks * k - size, np.float32)])  # noqa: E731
    pieces = []
    for rank in range(ranks):
        cut = [pad(x)[rank * k:(rank + 1) * k].copy() for x in (w, m, v, g)]
        out = np.empty(k, np.float32)
        assert call("AdamWOffloadStep", [cut[0], cut[1], cut[2], *scalars(), cut[3], out]) == 0
        pieces.append(out)
    assert np.array_equal(bits(np.concatenate(pieces)[:size]), bits(whole))


@pytest.mark.parametrize("variant", ["", "Float32"])
@pytest.mark.parametrize("half", sorted(HALVES))
@pytest.mark.parametrize("mode", ["Master", "MasterApply", "MasterSlice"])
def test_master_entries_give_the_kernels_bits(mode, half, variant):
    n = 1001
    dtype = HALVES[half]
    w, m, v, g = state(n, 2)
    master = w.astype(dtype).astype(np.float32)
    param, g16 = master.astype(dtype), g.astype(dtype)
    exp_master, exp_m, exp_v = master.copy(), m.copy(), v.copy()
    expected = kernel.adamw_master_step(exp_master, exp_m, exp_v, g16, param=param.copy(), rounding=VARIANTS[variant],
                                        **HYPER)
    inputs = [param, master, m, v, *scalars(), g16]
    if mode == "Master":
        out = np.empty_like(param)
        assert call(f"AdamWOffloadMaster{variant}", inputs + [out], [half] + ["float32"] * 8 + [half, half]) == 0
    elif mode == "MasterApply":
        out = param
        assert call(f"AdamWOffloadMasterApply{variant}", inputs + [np.zeros(1, np.float32)],
                    [half] + ["float32"] * 8 + [half, "float32"]) == 0
    else:
        out = np.empty_like(param)
        lead = np.zeros(1, np.int64)
        assert call(f"AdamWOffloadMasterSlice{variant}", [lead] + inputs + [out],
                    ["int64", half] + ["float32"] * 8 + [half, half]) == 0
    assert np.array_equal(bits(out), bits(expected))
    assert np.array_equal(bits(master), bits(exp_master)) and np.array_equal(m, exp_m) and np.array_equal(v, exp_v)


@pytest.mark.parametrize("case, code", [("too few", 1), ("float16 gradient", 2), ("size mismatch", 3),
                                        ("empty scalar", 3)])
def test_error_codes_leave_state_untouched(case, code):
    w, m, v, g = state(33)
    arrays, dtypes = with_fault([w, m, v, *scalars(), g, np.empty_like(w)], case, scalar=3)
    before = [a.copy() for a in arrays[:3]]
    assert call("AdamWOffloadStep", arrays, dtypes) == code
    assert all(np.array_equal(a, b) for a, b in zip(arrays[:3], before))
