"""AdamWeightDecayOffload's buckets: float32 parameters in host memory that share a learning rate are
updated by one AdamWOffloadApplyBucket op a bucket, each with its own weight decay, with the bits each would
get from its own op."""
import numpy as np
import pytest

ms = pytest.importorskip("mindspore")
from mindspore import Parameter, Tensor  # noqa: E402

from mindspore_offload import AdamWeightDecayOffload, _steps  # noqa: E402
from support.buckets import SHAPES, assert_all_same_bits, gradients, make_params, train  # noqa: E402

MODES = {"graph": ms.GRAPH_MODE, "pynative": ms.PYNATIVE_MODE}
# Weights and biases among LayerNorm scales and shifts: the decay filter leaves out "gamma" and "beta".
NAMES = ["layer0.weight", "layer0.bias", "norm0.gamma", "norm0.beta", "layer1.weight", "layer1.bias",
         "layer2.weight", "norm1.gamma", "norm1.beta", "layer3.weight"]
GROUPINGS = {
    "filter": None,  # no groups: one decay, where the names let it
    "two-decays": [{"params": slice(0, 5), "weight_decay": 0.05}, {"params": slice(5, 10), "weight_decay": 0.0}],
    "two-lrs": [{"params": slice(0, 5), "lr": 0.02, "weight_decay": 0.05},
                {"params": slice(5, 10), "weight_decay": 0.0}],
}
# One learning rate makes one run of the ten, across the groups; two learning rates, two runs.
BUCKETS = {"filter": ((0, 10),), "two-decays": ((0, 10),), "two-lrs": ((0, 5), (5, 10))}


def run(monkeypatch, limit, grouping, steps=4):
    monkeypatch.setattr(_steps, "MAX_BUCKET", limit)
    params = make_params(NAMES)
    if GROUPINGS[grouping] is None:
        groups = params
    else:
        groups = [{**group, "params": params[group["params"]]} for group in GROUPINGS[grouping]]
        groups.append({"order_params": params})
    opt = AdamWeightDecayOffload(groups, learning_rate=0.01, weight_decay=0.01)
    return opt, train(opt, params, steps)


@pytest.mark.parametrize("grouping", GROUPINGS)
@pytest.mark.parametrize("mode", MODES)
def test_bucketed_step_gives_the_bits_of_one_op_a_parameter(monkeypatch, tmp_path, mode, grouping):
    monkeypatch.chdir(tmp_path)
    ms.set_context(mode=MODES[mode])
    bucketed, after = run(monkeypatch, 256, grouping)
    assert bucketed.apply_on_host
    assert bucketed.buckets == BUCKETS[grouping]
    assert len(set(bucketed.decay_flags)) == 2  # some parameters decay, some do not
    single, after1 = run(monkeypatch, 1, grouping)
    assert single.buckets == ()
    assert_all_same_bits(after, after1)
    start = make_params(NAMES)
    assert all(not np.array_equal(a, p.asnumpy()) for a, p in zip(after, start))  # every step landed


@pytest.mark.parametrize("bad, error, message", [
    (Tensor(np.ones((65,), np.float32)), ValueError, r"'layer1.weight' of shape \(64,\)"),
    (Tensor(np.ones((64,), np.float16)), TypeError, r"'gradient' of the float32 parameter 'layer1.weight'"),
])
def test_a_bad_gradient_in_a_bucket_names_its_parameter_and_changes_nothing(graph_mode, bad, error, message):
    params = make_params(NAMES)
    opt = AdamWeightDecayOffload(params, learning_rate=0.01, weight_decay=0.01)
    assert opt.buckets == ((0, 10),)
    before = [p.asnumpy().copy() for p in params]
    grads = list(gradients(1)[0])
    grads[4] = bad
    with pytest.raises(error, match=message):
        opt(tuple(grads))
    for p, b in zip(params, before):
        assert np.array_equal(p.asnumpy(), b)
    assert int(opt.global_step.asnumpy()[0]) == 0


def test_seven_hundred_parameters_compile_and_all_move(graph_mode):
    rng = np.random.default_rng(5)
    start = [rng.standard_normal(4).astype(np.float32) for _ in range(700)]
    params = [Parameter(Tensor(w), name=f"w{i}" if i % 7 else f"norm{i}.gamma") for i, w in enumerate(start)]
    grads = tuple(Tensor(rng.standard_normal(4).astype(np.float32)) for _ in range(700))
    lr, decay, eps = 0.01, 0.1, 1e-6
    opt = AdamWeightDecayOffload(params, learning_rate=lr, weight_decay=decay, eps=eps)
    assert opt.buckets == ((0, 256), (256, 512), (512, 700))
    opt(grads)
    f32 = lambda x: np.float64(np.float32(x))  # noqa: E731
    # first step: m = (1 - beta1) g, v = (1 - beta2) g^2, both factors as float32 computes them; then
    # w - lr (m / (sqrt(v) + eps) + decay w), with no decay for a "gamma"
    one_minus_beta1, one_minus_beta2 = f32(np.float32(1) - np.float32(0.9)), f32(np.float32(1) - np.float32(0.999))
    for i, (p, w, g) in enumerate(zip(params, start, grads)):
        g64, w64 = g.asnumpy().astype(np.float64), w.astype(np.float64)
        own_decay = f32(decay) if i % 7 else 0.0
        step = (one_minus_beta1 * g64) / (np.sqrt(one_minus_beta2 * g64 * g64) + f32(eps)) + own_decay * w64
        np.testing.assert_allclose(p.asnumpy(), w64 - f32(lr) * step, rtol=1e-6, atol=1e-9)
