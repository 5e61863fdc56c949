"""The AdamOffloadMaster* aot entry points, called as MindSpore's CPU backend calls them (ctypes)."""
import numpy as np
import pytest

from mindspore_offload import kernel
from support.entry_points import PREPS, SUFFIXES, call, inputs, written


def make(n, t=3):
    rng = np.random.default_rng(n)
    w = rng.standard_normal(n).astype(np.float32)
    m = (rng.standard_normal(n) * 0.1).astype(np.float32)
    v = (np.abs(rng.standard_normal(n)) * 0.01).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float16)
    return w, m, v, g, dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, beta1_power=np.float32(0.9**t),
                            beta2_power=np.float32(0.999**t))


@pytest.mark.parametrize("prep", PREPS)
@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("apply", [False, True], ids=["out", "apply"])
def test_entry_points_match_adam_master_step(apply, suffix, prep):
    w, m, v, g, hyper = make(1001)
    wd, scale = PREPS[prep]
    param = written(w, np.float16)
    expect = [a.copy() for a in (w, m, v)]
    want = kernel.adam_master_step(*expect, g, param=param.copy(), use_nesterov="Nesterov" in suffix,
                                   weight_decay=wd, grad_scale=scale, **hyper)
    before = param.copy()
    out = np.full((1,), 7.0, np.float32) if apply else np.zeros(1001, np.float16)
    entry = "AdamOffloadMaster" + ("Apply" if apply else "") + suffix + prep
    assert call(entry, inputs(param, w, m, v, g, hyper, wd, scale) + [out]) == 0
    for got, exp in zip((w, m, v), expect):
        assert np.array_equal(got.view(np.uint32), exp.view(np.uint32))
    if apply:  # the write landed in the parameter's buffer
        assert np.array_equal(param.view(np.uint16), want.view(np.uint16)) and out[0] == 0.0
    else:  # the parameter was only read
        assert np.array_equal(out.view(np.uint16), want.view(np.uint16))
        assert np.array_equal(param.view(np.uint16), before.view(np.uint16))


def test_return_codes_and_nothing_written_on_error():
    w, m, v, g, hyper = make(17)
    param, out = w.astype(np.float16), np.zeros(17, np.float16)
    good = inputs(param, w, m, v, g, hyper, None, None) + [out]
    names = [str(a.dtype) for a in good]
    before = [a.copy() for a in good]
    assert call("AdamOffloadMaster", good[:-1]) == 1
    assert call("AdamOffloadMaster", good, names[:-2] + ["float32", "float32"]) == 2  # gradient not 16-bit
    assert call("AdamOffloadMaster", good, names[:-1] + ["bfloat16"]) == 2  # output not the gradient's dtype
    assert call("AdamOffloadMaster", good, names[:1] + ["float16"] + names[2:]) == 2  # master not float32
    assert call("AdamOffloadMaster", good, ["bfloat16"] + names[1:]) == 2  # parameter not the gradient's dtype
    assert call("AdamOffloadMaster", good[:-1] + [np.zeros(16, np.float16)]) == 3  # output
    assert call("AdamOffloadMaster", [np.zeros(16, np.float16)] + good[1:]) == 3  # parameter
    no_step = list(good)
    no_step[4] = np.ones(1, np.float32)
    assert call("AdamOffloadMaster", no_step) == 4
    for a, b in zip(before, good):
        assert np.array_equal(a.reshape(-1).view(np.uint8), b.reshape(-1).view(np.uint8))
    applied = good[:-1] + [np.zeros(1, np.float32)]
    assert call("AdamOffloadMasterApply", applied, ["bfloat16"] + names[1:-1] + ["float32"]) == 2  # param vs grad
    assert call("AdamOffloadMasterApply", applied, names[:-1] + ["float16"]) == 2  # output float32
    assert call("AdamOffloadMasterApply", [np.zeros(16, np.float16)] + applied[1:]) == 3
    assert call("AdamOffloadMasterApply", applied) == 0
