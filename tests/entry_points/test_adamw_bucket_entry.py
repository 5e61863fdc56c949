"""AdamWOffloadApplyBucket: many whole tensors, each with its own weight decay, in one pass give each the
bits of its own AdamWOffloadApply, at every level and thread count, with the threads' chunks crossing from
one tensor into the next."""
import numpy as np
import pytest

from support.buckets import (SIZES, assert_same_bits, assert_unchanged, columns, copy, every_level_and_thread_count,
                             tensors, with_fault)
from support.entry_points import call

VARIANTS = ["", "Locked", "Float32", "Float32Locked"]  # custom_op.h: Float32 is AdamW's float32 rounding
# Decays cycled over the tensors: undecayed ones (the beta/gamma filter) among decayed ones of two groups.
DECAYS = [0.0, 0.05, 0.01, 0.0, 0.05]


def scalars():
    return [np.full((), x, np.float32) for x in (1e-2, 0.9, 0.999, 1e-6)]  # lr, beta1, beta2, eps


def decays(k):
    return [np.full((), DECAYS[i % len(DECAYS)], np.float32) for i in range(k)]


def bucket_arrays(state):
    """lr, beta1, beta2, eps, then the parameters, moment1s, moment2s, weight decays and gradients, the output."""
    return scalars() + columns(state, 0, 1, 2) + decays(len(state)) + columns(state, 3) + \
        [np.full((1,), 7.0, np.float32)]


@pytest.mark.parametrize("variant", VARIANTS)
def test_bucket_equals_one_apply_per_tensor_at_every_level_and_thread_count(variant, lab):
    start = tensors(SIZES, seed=3 + len(variant))
    expected = copy(start)
    for (param, m, v, g), decay in zip(expected, decays(len(expected))):  # one AdamWOffloadApply a tensor
        assert call("AdamWOffloadApply" + variant, [param, m, v] + scalars() + [decay, g, np.zeros(1, np.float32)]) == 0
    for context in every_level_and_thread_count(lab):
        state = copy(start)
        arrays = bucket_arrays(state)
        assert call("AdamWOffloadApplyBucket" + variant, arrays, library=lab.__file__) == 0
        assert arrays[-1][0] == 0.0
        assert_same_bits(state, expected, ("param", "moment1", "moment2"), context)


@pytest.mark.parametrize("case, code", [
    ("no tensor", 1),
    ("a tensor short of its five", 1),
    ("float16 gradient", 2),
    ("float16 weight decay", 2),
    ("moment size", 3),
    ("gradient size", 3),
    ("empty scalar", 3),
    ("empty weight decay", 3),
    ("empty output", 3),
])
def test_errors_write_nothing(case, code):
    state = tensors([9, 33, 4], seed=2)
    before = copy(state)
    arrays, dtypes = with_fault(bucket_arrays(state), case, shared=4, width=5, lr_at=0)
    assert call("AdamWOffloadApplyBucket", arrays, dtypes) == code
    assert_unchanged(state, before)
