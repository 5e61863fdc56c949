"""Buckets: float32 parameters in host memory that share a learning rate are updated by one op a bucket
(one pass over all their elements), with the bits each would get from its own op."""
import numpy as np
import pytest

ms = pytest.importorskip("mindspore")
from mindspore import Parameter, Tensor, nn  # noqa: E402

from mindspore_offload import AdamOffload, _steps  # noqa: E402
from support.buckets import assert_all_same_bits, gradients, make_params, train  # noqa: E402

MODES = {"graph": ms.GRAPH_MODE, "pynative": ms.PYNATIVE_MODE}


def test_buckets_are_runs_of_one_kind_and_learning_rate_up_to_the_limit():
    kinds = ["host", "host", "host", "master_host", "host", "host", "delta", "host", "host", "host", "host"]
    keys = ["a", "a", "a", "a", "a", "b", "a", "a", "a", "a", "c"]
    # (3,): another kind; (4,), (5,): alone in their runs; (10,): another learning rate
    assert _steps.buckets(kinds, keys) == ((0, 3), (7, 10))
    assert _steps.buckets(kinds, keys, limit=2) == ((0, 2), (7, 9))  # (2,) and (9,) left alone
    assert _steps.buckets(["delta"] * 4, [None] * 4) == ()  # the device path keeps one op a parameter
    assert _steps.buckets(["host"] * 600, [None] * 600) == tuple(
        (i, min(i + _steps.MAX_BUCKET, 600)) for i in range(0, 600, _steps.MAX_BUCKET))


def run(monkeypatch, limit, grouped, steps=4, **kwargs):
    monkeypatch.setattr(_steps, "MAX_BUCKET", limit)
    params = make_params()
    if grouped:
        groups = [{"params": params[:5], "lr": 0.02}, {"params": params[5:]}, {"order_params": params}]
    else:
        groups = params
    opt = AdamOffload(groups, learning_rate=0.01, weight_decay=0.01, **kwargs)
    return opt, train(opt, params, steps)


@pytest.mark.parametrize("variant", [{}, {"use_nesterov": True}, {"use_locking": True}], ids=["plain", "nesterov",
                                                                                               "locked"])
@pytest.mark.parametrize("grouped", [False, True], ids=["one-lr", "two-lrs"])
@pytest.mark.parametrize("mode", MODES)
def test_bucketed_step_gives_the_bits_of_one_op_a_parameter(monkeypatch, tmp_path, mode, grouped, variant):
    monkeypatch.chdir(tmp_path)
    ms.set_context(mode=MODES[mode])
    bucketed, after = run(monkeypatch, 256, grouped, **variant)
    assert bucketed.apply_on_host
    assert bucketed.buckets == (((0, 5), (5, 10)) if grouped else ((0, 10),))
    single, after1 = run(monkeypatch, 1, grouped, **variant)
    assert single.buckets == ()
    assert_all_same_bits(after, after1)
    assert not np.array_equal(after[0], make_params()[0].asnumpy())  # the step landed


def test_a_bad_gradient_in_a_bucket_names_its_parameter_and_changes_nothing(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    ms.set_context(mode=ms.GRAPH_MODE)
    params = make_params()
    opt = AdamOffload(params, learning_rate=0.01)
    assert opt.buckets
    before = [p.asnumpy().copy() for p in params]
    grads = list(gradients(1)[0])
    grads[4] = Tensor(np.ones((65,), np.float32))
    with pytest.raises(ValueError, match=r"'layer4.weight' of shape \(64,\)"):
        opt(tuple(grads))
    for p, b in zip(params, before):
        assert np.array_equal(p.asnumpy(), b)
    assert int(opt.global_step.asnumpy()[0]) == 0


def test_seven_hundred_parameters_compile_and_all_move(tmp_path, monkeypatch):
    """A tuple repeated per parameter once stopped MindSpore's compiler past ~600 parameters ("Exceed
    function call depth limit 1000"); every parameter must now take its step."""
    monkeypatch.chdir(tmp_path)
    ms.set_context(mode=ms.GRAPH_MODE)
    rng = np.random.default_rng(5)
    start = [rng.standard_normal(4).astype(np.float32) for _ in range(700)]
    params = [Parameter(Tensor(w), name=f"w{i}") for i, w in enumerate(start)]
    grads = tuple(Tensor(rng.standard_normal(4).astype(np.float32)) for _ in range(700))
    opt = AdamOffload(params, learning_rate=0.01)
    assert opt.buckets == ((0, 256), (256, 512), (512, 700))
    opt(grads)
    for p, w, g in zip(params, start, grads):
        # first step: m = 0.1 g, v = 0.001 g^2, lr_t = 0.01 sqrt(0.001) / 0.1; delta = -lr_t m / (sqrt(v) + eps)
        g64 = g.asnumpy().astype(np.float64)
        lr_t = 0.01 * np.sqrt(1 - 0.999) / (1 - 0.9)
        expected = w - lr_t * (0.1 * g64) / (np.sqrt(0.001 * g64 * g64) + 1e-8)
        np.testing.assert_allclose(p.asnumpy(), expected, rtol=1e-5, atol=1e-7)
