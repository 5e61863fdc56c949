"""The AdamOffloadMasterSlice* and AdamOffloadMasterPut aot entry points (shard_state=True with 16-bit
parameters), called as MindSpore's CPU backend calls them (ctypes): the slices of a tensor, each told
where the whole tensor's last n mod 8 elements fall in it, give the whole tensor's bits; the gathered
slices put into the parameter are its new value."""
import numpy as np
import pytest
from mindspore.common.np_dtype import bfloat16

from mindspore_offload import _sharding, kernel
from support.entry_points import PREPS, SUFFIXES, call, inputs, written

HALVES = {"float16": np.float16, "bfloat16": bfloat16}


def make(n, half, t=4):
    rng = np.random.default_rng(n)
    w = rng.standard_normal(n).astype(np.float32)
    m = (rng.standard_normal(n) * 0.1).astype(np.float32)
    v = (np.abs(rng.standard_normal(n)) * 0.01).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32).astype(HALVES[half])
    return w, m, v, g, dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, beta1_power=np.float32(0.9**t),
                            beta2_power=np.float32(0.999**t))


def run_slices(entry, w, m, v, g, hyper, wd, scale, ranks, bits, param=None):
    """Every rank's slice through the entry point, as _sharding's graph gives them: with ``bits`` (the
    CPU backend) the whole gradient and parameter and where the slice starts, and int16 out; else their
    zero-padded slices. ``param`` defaults to the master rounded (nothing written). Returns the joined
    master, m, v and new parameter (trimmed to the tensor)."""
    n = w.size
    k = _sharding.slice_length(n, ranks)
    pad = lambda a: np.concatenate([a, np.zeros(ranks * k - n, a.dtype)])  # noqa: E731
    param = w.astype(g.dtype) if param is None else param
    w, m, v, whole, g, whole_param, param = pad(w), pad(m), pad(v), g, pad(g), param, pad(param)
    outs = []
    for rank in range(ranks):
        part = slice(rank * k, (rank + 1) * k)
        pieces = [w[part].copy(), m[part].copy(), v[part].copy()]
        start = rank * k
        lead = np.array([min(max(n - n % 8 - start, 0), k), start if bits else 0], np.int64)
        out = np.full(k, 77, np.int16 if bits else g.dtype)
        gradient = whole.copy() if bits else g[part].copy()
        current = whole_param.copy() if bits else param[part].copy()
        arrays = [lead] + inputs(current, *pieces, gradient, hyper, wd, scale) + [out]
        assert call(entry, arrays) == 0
        w[part], m[part], v[part] = pieces
        outs.append(out.view(np.uint16))
    joined = np.concatenate(outs)
    assert not joined[n:].any() and not w[n:].any() and not m[n:].any() and not v[n:].any()  # padding
    return w[:n], m[:n], v[:n], joined[:n]


@pytest.mark.parametrize("half", HALVES)
@pytest.mark.parametrize("n", [1, 2, 7, 9, 15, 17, 23, 33, 63, 65, 1003, 4099])
@pytest.mark.parametrize("ranks", [2, 3, 4])
def test_slices_give_the_whole_tensors_bits(half, n, ranks):
    w, m, v, g, hyper = make(n, half)
    param = written(w, HALVES[half])
    expect = [a.copy() for a in (w, m, v)]
    want = kernel.adam_master_step(*expect, g, param=param, use_nesterov=True, weight_decay=0.02, grad_scale=0.25,
                                   **hyper)
    got = run_slices("AdamOffloadMasterSliceNesterovDecayUnscale", w, m, v, g, hyper, 0.02, 0.25, ranks,
                     bits=(n % 2 == 0), param=param)
    for a, b, what in zip(got[:3], expect, ("master", "m", "v")):
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), what
    assert np.array_equal(got[3], want.view(np.uint16))


@pytest.mark.parametrize("prep", PREPS)
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_every_slice_entry_matches_adam_master_step(suffix, prep):
    w, m, v, g, hyper = make(77, "bfloat16")
    wd, scale = PREPS[prep]
    expect = [a.copy() for a in (w, m, v)]
    want = kernel.adam_master_step(*expect, g, use_nesterov="Nesterov" in suffix, weight_decay=wd, grad_scale=scale,
                                   **hyper)
    got = run_slices("AdamOffloadMasterSlice" + suffix + prep, w, m, v, g, hyper, wd, scale, 2, bits=True)
    for a, b in zip(got[:3], expect):
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
    assert np.array_equal(got[3], want.view(np.uint16))


def test_the_leftover_rounding_is_what_makes_the_slices_agree():
    """Telling every slice that none of the tensor's leftovers are its own changes the last n mod 8
    elements' bits for some inputs: the check above can fail."""
    n, ranks = 4099, 2
    w, m, v, g, hyper = make(n, "float16")
    expect = [a.copy() for a in (w, m, v)]
    kernel.adam_master_step(*expect, g, **hyper)
    k = _sharding.slice_length(n, ranks)
    part = slice(k, n)
    pieces = [w[part].copy(), m[part].copy(), v[part].copy()]
    body_only = np.array([k, 0], np.int64)  # "none in this slice": the vector body's rounding throughout
    out = np.zeros(n - k, np.float16)
    arrays = [body_only] + inputs(pieces[0].astype(np.float16), *pieces, g[part].copy(), hyper, None, None) + [out]
    assert call("AdamOffloadMasterSlice", arrays) == 0
    assert not np.array_equal(pieces[1].view(np.uint32), expect[1][part].view(np.uint32))


def test_put_writes_the_gathered_bits_into_the_parameter():
    param = np.zeros(5, bfloat16)
    gathered = np.arange(1, 7, dtype=np.int16)  # two slices of three: one padding element
    done = np.full(1, 7.0, np.float32)
    assert call("AdamOffloadMasterPut", [param, gathered, done]) == 0
    assert np.array_equal(param.view(np.uint16), np.arange(1, 6, dtype=np.uint16)) and done[0] == 0.0
    half = np.zeros(5, np.float16)
    assert call("AdamOffloadMasterPut", [half, np.arange(6, dtype=np.float16), done]) == 0
    assert np.array_equal(half, np.arange(5, dtype=np.float16))


def test_return_codes_and_nothing_written_on_error():
    w, m, v, g, hyper = make(17, "float16")
    lead = np.array([16, 0], np.int64)
    good = [lead] + inputs(w.astype(np.float16), w, m, v, g, hyper, None, None) + [np.zeros(17, np.float16)]
    names = [str(a.dtype) for a in good]
    before = [a.copy() for a in good]
    assert call("AdamOffloadMasterSlice", good[1:]) == 1
    assert call("AdamOffloadMasterSlice", good, ["int32"] + names[1:]) == 2  # leftover_from not int64
    assert call("AdamOffloadMasterSlice", good, names[:-1] + ["float32"]) == 2  # output neither dtype nor int16
    assert call("AdamOffloadMasterSlice", good, names[:-1] + ["bfloat16"]) == 2
    assert call("AdamOffloadMasterSlice", [np.zeros(1, np.int64)] + good[1:]) == 3  # start missing
    assert call("AdamOffloadMasterSlice", [np.array([16, -1], np.int64)] + good[1:]) == 3
    assert call("AdamOffloadMasterSlice", good[:-1] + [np.zeros(16, np.float16)]) == 3
    assert call("AdamOffloadMasterSlice", good[:1] + [np.zeros(16, np.float16)] + good[2:]) == 3  # parameter
    no_step = list(good)
    no_step[5] = np.ones(1, np.float32)
    assert call("AdamOffloadMasterSlice", no_step) == 4
    for a, b in zip(before, good):
        assert np.array_equal(a.reshape(-1).view(np.uint8), b.reshape(-1).view(np.uint8))
    param, done = np.zeros(5, np.float16), np.zeros(1, np.float32)
    assert call("AdamOffloadMasterPut", [param, np.ones(6, np.float16)]) == 1
    assert call("AdamOffloadMasterPut", [param, np.ones(6, np.float32), done]) == 2
    assert call("AdamOffloadMasterPut", [param, np.ones(6, np.float16), done], ["float16", "bfloat16", "float32"]) == 2
    assert call("AdamOffloadMasterPut", [param, np.ones(4, np.float16), done]) == 3
    assert not param.any()
