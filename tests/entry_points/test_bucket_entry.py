"""AdamOffloadApplyBucket: many whole tensors in one pass give each the bits of its own AdamOffloadApply,
at every level and thread count, with the threads' chunks crossing from one tensor into the next."""
import numpy as np
import pytest

from support.buckets import (SIZES, assert_same_bits, assert_unchanged, columns, copy, every_level_and_thread_count,
                             tensors, with_fault)
from support.entry_points import call
from support.reference import adam_reference, assert_step_close

VARIANTS = ["", "Nesterov", "Locked", "NesterovLocked"]


def scalars(t=3):
    s = lambda x, shape=(): np.full(shape, x, dtype=np.float32)  # noqa: E731
    return [s(0.9**t, (1,)), s(0.999**t, (1,)), s(1e-3), s(0.9), s(0.999), s(1e-8)]


def bucket_arrays(state):
    return scalars() + columns(state, 0, 1, 2, 3) + [np.full((1,), 7.0, np.float32)]


@pytest.mark.parametrize("variant", VARIANTS)
def test_bucket_equals_one_apply_per_tensor_at_every_level_and_thread_count(variant, lab):
    start = tensors(SIZES, seed=len(variant))
    expected = copy(start)
    for param, m, v, g in expected:  # one AdamOffloadApply a tensor, on one thread
        assert call("AdamOffloadApply" + variant, [param, m, v] + scalars() + [g, np.zeros(1, np.float32)]) == 0
    for context in every_level_and_thread_count(lab):
        state = copy(start)
        arrays = bucket_arrays(state)
        assert call("AdamOffloadApplyBucket" + variant, arrays, library=lab.__file__) == 0
        assert arrays[-1][0] == 0.0
        assert_same_bits(state, expected, ("param", "moment1", "moment2"), context)


def test_bucket_matches_the_float64_reference():
    state = tensors([5, 64, 1000, 33], seed=1)
    before = copy(state)
    assert call("AdamOffloadApplyBucket", bucket_arrays(state)) == 0
    for (param, m, v, g), (param0, m0, v0, _) in zip(state, before):
        ref = adam_reference(m0, v0, g, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, beta1_power=0.9**3,
                             beta2_power=0.999**3, use_nesterov=False)
        m64, v64, d64, bound, _ = ref
        assert_step_close(m, v, d64.astype(np.float32), ref)  # the moments
        # the parameter: its delta within the bound, then one rounding of the sum
        np.testing.assert_array_less(np.abs(param - (param0 + d64)),
                                     bound + np.abs(param) * np.finfo(np.float32).eps)


@pytest.mark.parametrize("case, code", [
    ("no tensor", 1),
    ("a tensor short of its four", 1),
    ("float16 gradient", 2),
    ("moment size", 3),
    ("gradient size", 3),
    ("empty scalar", 3),
    ("empty output", 3),
    ("step zero", 4),
])
def test_errors_write_nothing(case, code):
    state = tensors([9, 33, 4], seed=2)
    before = copy(state)
    arrays, dtypes = with_fault(bucket_arrays(state), case, shared=6, width=4, lr_at=2)
    assert call("AdamOffloadApplyBucket", arrays, dtypes) == code
    assert_unchanged(state, before)
