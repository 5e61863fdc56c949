"""AdamWeightDecayOffload(rounding="float32"): MindSpore's AVX-512 vector body's formula (csrc/adamw.h),
through the optimizer.

Given the gradients directly, every step's parameters and moments are the formula's bits, rounded
operation by operation in NumPy (support.reference.adamw_float32_reference), on the in-place path and on
the device path, for float32 and float16 parameters. Against nn.AdamWeightDecay, which on this CPU
rounds with its double-precision scalar loop (or, on an AVX-512 CPU, with this very formula for most
elements), a trained LeNet5 stays within float32 rounding. A bad `rounding` is refused before anything is
built.
"""
import numpy as np
import pytest

import mindspore as ms
from mindspore import Parameter, Tensor, nn

from mindspore_offload import AdamWeightDecayOffload
from support import nets
from support.reference import adamw_float32_reference

MODES = pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE], ids=["graph", "pynative"])
SHAPES = [(1,), (7,), (9,), (33,), (31, 33), (1000,)]
LR, DECAY = 0.02, 0.1


def fixed_run(mode, dtype, steps=6):
    """The optimizer fed fixed gradients; returns (names, start, gradients, per step [(params, m, v)])."""
    ms.set_context(mode=mode)
    rng = np.random.default_rng(11)
    names = [f"layer{i}.{'gamma' if i == 2 else 'weight'}" for i in range(len(SHAPES))]
    start = [rng.standard_normal(s).astype(np.float32).astype(dtype) for s in SHAPES]
    grads = [[(rng.standard_normal(s) * 10.0 ** rng.integers(-3, 1)).astype(np.float32).astype(dtype)
              for s in SHAPES] for _ in range(steps)]
    params = [Parameter(Tensor(x.copy()), name=n) for x, n in zip(start, names)]
    opt = AdamWeightDecayOffload(params, learning_rate=LR, weight_decay=DECAY, rounding="float32")
    trace = []
    for step in grads:
        opt(tuple(Tensor(g) for g in step))
        trace.append(([p.asnumpy().copy() for p in params], [m.asnumpy().copy() for m in opt.moment1],
                      [v.asnumpy().copy() for v in opt.moment2]))
    return names, start, grads, trace


@pytest.mark.compat
@MODES
@pytest.mark.parametrize("host_apply", ["1", "0"], ids=["in-place", "device-path"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["float32", "float16"])
def test_fixed_gradients_give_the_formulas_bits(mode, host_apply, dtype, monkeypatch):
    monkeypatch.setenv("MINDSPORE_OFFLOAD_HOST_APPLY", host_apply)
    names, start, grads, trace = fixed_run(mode, dtype)
    # The reference: float32 state (a float16 parameter's master), the gradient widened, 'gamma' not decayed.
    w = [x.astype(np.float32) for x in start]
    m = [np.zeros(s, np.float32) for s in SHAPES]
    v = [np.zeros(s, np.float32) for s in SHAPES]
    for t, (step, (params, m_got, v_got)) in enumerate(zip(grads, trace)):
        for i, name in enumerate(names):
            decay = 0.0 if "gamma" in name else DECAY
            w[i], m[i], v[i] = adamw_float32_reference(w[i], m[i], v[i], step[i].astype(np.float32), lr=LR,
                                                       beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=decay)
            expected = w[i].astype(dtype)
            assert params[i].tobytes() == expected.tobytes(), (name, t)
            assert m_got[i].tobytes() == m[i].tobytes() and v_got[i].tobytes() == v[i].tobytes(), (name, t)


def test_the_two_roundings_differ_and_stay_close():
    """Trained the same way (LeNet5, 12 steps at lr 0.01), "float32" and "double" part, but only as far as
    rounding differences grow in training: measured here, at most 5.8e-6 for weights up to 0.4 in size
    (about 1.5e-5 of the largest), in 39 of 48000 elements past rtol 1e-4. nn.AdamWeightDecay is "double"'s
    bits on a CPU without AVX-512, and close to "float32" on one with it."""
    runs = {}
    for label, factory in {
            "float32": lambda net: AdamWeightDecayOffload(net.trainable_params(), learning_rate=0.01,
                                                          weight_decay=0.05, rounding="float32"),
            "double": lambda net: AdamWeightDecayOffload(net.trainable_params(), learning_rate=0.01,
                                                         weight_decay=0.05),
            "mindspore": lambda net: nn.AdamWeightDecay(net.trainable_params(), learning_rate=0.01,
                                                        weight_decay=0.05)}.items():
        runs[label] = nets.train(factory, steps=12, mode=ms.GRAPH_MODE)
    weights = [name for name in runs["mindspore"] if not name.startswith("optimizer.") and "." in name]
    assert any(runs["float32"][n].tobytes() != runs["double"][n].tobytes() for n in weights)
    for label in ("float32", "double"):
        for name in weights:
            expected = runs["mindspore"][name]
            atol = 1e-4 * float(np.max(np.abs(expected), initial=0.0))
            np.testing.assert_allclose(runs[label][name], expected, rtol=1e-4, atol=atol, err_msg=(label, name))


@pytest.mark.parametrize("rounding, error", [("float64", ValueError), ("Float32", ValueError), (None, TypeError),
                                             (32, TypeError)])
def test_bad_rounding_is_refused(rounding, error):
    net = nets.build_net()
    with pytest.raises(error, match="'rounding'"):
        AdamWeightDecayOffload(net.trainable_params(), rounding=rounding)
