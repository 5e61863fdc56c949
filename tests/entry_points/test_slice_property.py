"""Every slice entry point over the whole space of slicings: sizes from 1 to 4096 and past 2^16, rank
counts from 1 to 1024, every rank. The slices, laid out as shard_state=True lays them out (each told by
_sharding.leftover_from where the whole tensor's last n mod 8 elements fall in it), together give the
whole tensor's bits. A slice that lies wholly past the tensor's end holds only padding, more than 8
elements of it with many ranks: the float16 entries once overran a fixed buffer there."""
import numpy as np
import pytest
from mindspore.common.np_dtype import bfloat16

from mindspore_offload import _sharding
from support.entry_points import call, inputs

HYPER = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, beta1_power=np.float32(0.9**3),
             beta2_power=np.float32(0.999**3))


def slicings():
    """(size, ranks): the cases where the arithmetic is tight, and a seeded draw, log-uniform in both."""
    cases = {(145, 16), (129, 1024), (1, 1024), (9, 1024), (4096, 1024), (4095, 1023), (65543, 1024),
             (65536, 1), (17, 2), (8, 3), (1000, 999), (1 << 17, 768)}
    rng = np.random.default_rng(20261202)
    for _ in range(48):
        size = int(np.exp(rng.uniform(0, np.log(4096)))) if rng.random() < 0.9 else int(rng.integers(1 << 16, 1 << 17))
        cases.add((max(size, 1), int(np.exp(rng.uniform(0, np.log(1024))))))
    return sorted(cases)


def state(n, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(n).astype(np.float32)
    m = (rng.standard_normal(n) * 0.1).astype(np.float32)
    v = (np.abs(rng.standard_normal(n)) * 0.01).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    return w, m, v, g


def scalars():
    s = lambda x, shape=(): np.full(shape, x, dtype=np.float32)  # noqa: E731
    h = HYPER
    return [s(h["beta1_power"], (1,)), s(h["beta2_power"], (1,)), s(h["lr"]), s(h["beta1"]), s(h["beta2"]),
            s(h["eps"])]


SCALARS = scalars()  # read only: one set serves every call


def pad(a, length):
    return np.concatenate([a, np.zeros(length - a.size, a.dtype)])


def float32_slices(n, ranks):
    """AdamOffloadSliceNesterov, each rank given its zero-padded slice of the gradient; the joined delta
    and moments against AdamOffloadStepNesterov on the whole tensor."""
    _, m, v, g = state(n)
    whole = [m.copy(), v.copy()] + scalars() + [g, np.zeros(n, np.float32)]
    assert call("AdamOffloadStepNesterov", whole) == 0
    k = _sharding.slice_length(n, ranks)
    m, v, g = pad(m, ranks * k), pad(v, ranks * k), pad(g, ranks * k)
    delta = np.full(ranks * k, 7.0, np.float32)
    for rank in range(ranks):
        part = slice(rank * k, (rank + 1) * k)
        lead = np.array([_sharding.leftover_from(n, k, rank)], np.int64)
        pieces = [m[part].copy(), v[part].copy()]
        out = np.empty(k, np.float32)
        assert call("AdamOffloadSliceNesterov", [lead] + pieces + SCALARS + [g[part], out]) == 0
        m[part], v[part], delta[part] = pieces[0], pieces[1], out
    return (m[:n], v[:n], delta[:n]), (whole[0], whole[1], whole[-1])


def master_slices(n, ranks, half, whole_gradient):
    """AdamOffloadMasterSliceNesterovDecayUnscale, each rank given either its padded slices of gradient
    and parameter (a device backend) or the whole ones and its start (the CPU backend, int16 out); the
    joined master, moments and new parameter against AdamOffloadMasterNesterovDecayUnscale."""
    w, m, v, g = state(n)
    g = g.astype(half)
    param = w.astype(half)
    param[::5] = (w[::5] + 1.0).astype(half)  # written since the last step: those masters restart
    hyper = dict(HYPER)
    new = np.zeros(n, half)
    expect = [w.copy(), m.copy(), v.copy()]
    assert call("AdamOffloadMasterNesterovDecayUnscale", inputs(param, *expect, g, hyper, 0.02, 0.25) + [new]) == 0
    k = _sharding.slice_length(n, ranks)
    w, m, v, padded_g, padded_param = (pad(a, ranks * k) for a in (w, m, v, g, param))
    joined = np.full(ranks * k, 77, np.uint16)
    for rank in range(ranks):
        part = slice(rank * k, (rank + 1) * k)
        start = rank * k
        lead = np.array([_sharding.leftover_from(n, k, rank), start if whole_gradient else 0], np.int64)
        pieces = [w[part].copy(), m[part].copy(), v[part].copy()]
        gradient, current = (g, param) if whole_gradient else (padded_g[part], padded_param[part])
        out = np.full(k, 77, np.int16 if whole_gradient else half)
        arrays = [lead] + inputs(current, *pieces, gradient, hyper, 0.02, 0.25) + [out]
        assert call("AdamOffloadMasterSliceNesterovDecayUnscale", arrays) == 0
        w[part], m[part], v[part] = pieces
        joined[part] = out.view(np.uint16)
    assert not joined[n:].any()  # the padding's new value is 0
    return (w[:n], m[:n], v[:n], joined[:n]), (*expect, new.view(np.uint16))


KINDS = {
    "float32": float32_slices,
    "float16-device": lambda n, r: master_slices(n, r, np.float16, False),
    "float16-cpu": lambda n, r: master_slices(n, r, np.float16, True),
    "bfloat16-device": lambda n, r: master_slices(n, r, bfloat16, False),
    "bfloat16-cpu": lambda n, r: master_slices(n, r, bfloat16, True),
}


@pytest.mark.parametrize("kind", KINDS)
def test_the_slices_of_every_slicing_give_the_whole_tensors_bits(kind):
    for n, ranks in slicings():
        got, want = KINDS[kind](n, ranks)
        for a, b in zip(got, want):
            assert np.array_equal(a.view(np.uint8), b.view(np.uint8)), (n, ranks)
