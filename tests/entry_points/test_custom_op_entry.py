"""The aot entry points, called the way MindSpore's CPU backend calls them, through ctypes."""
import numpy as np
import pytest

from mindspore_offload import kernel
from support.entry_points import call, with_fault
from support.reference import adam_reference, assert_step_close

ENTRIES = ["AdamOffloadStep", "AdamOffloadStepNesterov", "AdamOffloadStepLocked", "AdamOffloadStepNesterovLocked"]


def make(n, t=3, nesterov=False):
    rng = np.random.default_rng(n)
    m = (rng.standard_normal(n) * 0.1).astype(np.float32)
    v = (np.abs(rng.standard_normal(n)) * 0.01).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    scalar = lambda x, shape=(): np.full(shape, x, dtype=np.float32)  # noqa: E731
    arrays = [m, v, scalar(0.9**t, (1,)), scalar(0.999**t, (1,)), scalar(1e-3), scalar(0.9), scalar(0.999),
              scalar(1e-8), g, np.empty_like(g)]
    return arrays


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("n", [1, 17, 4099])
def test_entry_points_compute_the_step(entry, n):
    arrays = make(n)
    m, v, g = arrays[0], arrays[1], arrays[8]
    ref = adam_reference(m, v, g, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, beta1_power=0.9**3,
                         beta2_power=0.999**3, use_nesterov="Nesterov" in entry)
    assert call(entry, arrays) == 0
    assert_step_close(m, v, arrays[9], ref)


@pytest.mark.parametrize("entry", [e.replace("Step", "Apply") for e in ENTRIES])
def test_apply_entry_points_update_the_parameter_in_place(entry):
    arrays = make(1000)
    param = np.random.default_rng(7).standard_normal(1000).astype(np.float32)
    m, v, g = arrays[0].copy(), arrays[1].copy(), arrays[8]
    expected = param + kernel.adam_delta(m, v, g, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                                         beta1_power=np.float32(0.9**3), beta2_power=np.float32(0.999**3),
                                         use_nesterov="Nesterov" in entry)
    done = np.full((1,), 7.0, np.float32)
    assert call(entry, [param] + arrays[:9] + [done]) == 0
    assert np.array_equal(param, expected) and np.array_equal(arrays[0], m) and np.array_equal(arrays[1], v)
    assert done[0] == 0.0
    assert call(entry, arrays) == 1  # the delta layout has one array fewer


def test_same_bits_as_the_python_api():
    arrays = make(1000)
    m, v, g = arrays[0].copy(), arrays[1].copy(), arrays[8]
    assert call("AdamOffloadStepNesterov", arrays) == 0
    d = kernel.adam_delta(m, v, g, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, beta1_power=np.float32(0.9**3),
                          beta2_power=np.float32(0.999**3), use_nesterov=True)
    assert np.array_equal(d, arrays[9]) and np.array_equal(m, arrays[0]) and np.array_equal(v, arrays[1])


@pytest.mark.parametrize("case, code", [
    ("too few", 1),
    ("float16 gradient", 2),
    ("float64 moment", 2),
    ("size mismatch", 3),
    ("empty scalar", 3),
    ("step zero", 4),
])
def test_error_codes_leave_state_untouched(case, code):
    arrays, dtypes = with_fault(make(33), case, scalar=4)
    if case == "float64 moment":
        dtypes = [str(a.dtype) for a in arrays]
        dtypes[0] = "float64"
    elif case == "step zero":
        arrays[2][...] = 1.0
    before = [a.copy() for a in arrays[:2]]
    assert call(ENTRIES[0], arrays, dtypes) == code
    assert all(np.array_equal(a, b) for a, b in zip(arrays[:2], before))


@pytest.mark.parametrize("entry", [e.replace("Step", "Slice") for e in ENTRIES])
@pytest.mark.parametrize("size, ranks", [(1, 2), (7, 2), (13, 3), (17, 2), (20, 3), (23, 4), (1023, 2), (4099, 3)])
def test_slices_give_the_whole_tensors_bits(entry, size, ranks):
    """shard_state's layout: each rank runs the Slice entry point on its zero-padded ceil(size/ranks) slice,
    told where the whole tensor's last size mod 8 elements (MindSpore's leftovers) fall in it. Together the
    slices must give the Step entry point's moments and delta on the whole tensor, bit for bit; (13, 3) has
    the leftovers straddle two slices."""
    whole = make(size, nesterov="Nesterov" in entry)
    step_entry = entry.replace("Slice", "Step")
    sliced = [a.copy() for a in whole]
    assert call(step_entry, whole) == 0
    k = -(-size // ranks)
    pad = lambda a: np.concatenate([a, np.zeros(ranks * k - size, np.float32)])  # noqa: E731
    m, v, g = pad(sliced[0]), pad(sliced[1]), pad(sliced[8])
    delta = np.empty(ranks * k, np.float32)
    for rank in range(ranks):
        part = slice(rank * k, (rank + 1) * k)
        leftover_from = np.array([min(max(size - size % 8 - rank * k, 0), k)], np.int64)
        arrays = [leftover_from, m[part].copy(), v[part].copy()] + sliced[2:8] + [g[part].copy(), np.empty(k, np.float32)]
        assert call(entry, arrays) == 0
        m[part], v[part], delta[part] = arrays[1], arrays[2], arrays[10]
    for name, got, expected in (("moment1", m[:size], whole[0]), ("moment2", v[:size], whole[1]),
                                ("delta", delta[:size], whole[9])):
        assert np.array_equal(got.view(np.uint32), expected.view(np.uint32)), name


def test_slice_entry_refuses_a_float_leftover_index():
    arrays = make(16)
    assert call("AdamOffloadSlice", [np.array([8.0], np.float32)] + arrays) == 2
