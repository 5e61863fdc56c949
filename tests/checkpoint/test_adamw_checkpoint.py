"""AdamWeightDecayOffload's checkpoints: nn.AdamWeightDecay's names and shapes, loading both ways, and a
resumed run equal in every bit to one that never stopped, whichever optimizer ran the first half."""
import numpy as np
import pytest

ms = pytest.importorskip("mindspore")
from mindspore import Tensor, nn  # noqa: E402

from mindspore_offload import AdamWeightDecayOffload, kernel, load_param_into_net_checked  # noqa: E402

OPTIMIZERS = {"ours": AdamWeightDecayOffload, "mindspore": nn.AdamWeightDecay}
# MindSpore rounds as we do on CPUs without AVX-512 (docs/design.md): there its runs are ours, bit for bit.
BITWISE = "avx512" not in kernel.available_isas()

pytestmark = pytest.mark.usefixtures("graph_mode")


def make_cell(optimizer, seed=0):
    net = nn.SequentialCell(nn.Dense(6, 5), nn.ReLU(), nn.Dense(5, 3))
    rng = np.random.default_rng(seed)
    for p in net.trainable_params():
        p.set_data(Tensor(rng.standard_normal(p.shape).astype(np.float32) * 0.5))
    opt = OPTIMIZERS[optimizer](net.trainable_params(), learning_rate=0.01, weight_decay=0.05)
    cell = nn.TrainOneStepCell(nn.WithLossCell(net, nn.MSELoss()), opt)
    cell.set_train()
    return cell


def train(cell, first_step, steps):
    for step in range(first_step, first_step + steps):
        rng = np.random.default_rng(1000 + step)  # the data depends on the step only
        cell(Tensor(rng.standard_normal((8, 6)).astype(np.float32)),
             Tensor(rng.standard_normal((8, 3)).astype(np.float32)))


def values(cell):
    return {p.name: p.asnumpy().copy() for p in cell.get_parameters()}


def assert_same(a, b, bitwise=True):
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
        if bitwise:
            assert a[name].tobytes() == b[name].tobytes(), name
        else:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-7, err_msg=name)


def save(cell, path):
    ms.save_checkpoint(cell, str(path))
    return str(path)


def test_names_and_shapes_equal_nn_adam_weight_decay(tmp_path):
    ours = ms.load_checkpoint(save(make_cell("ours"), tmp_path / "ours.ckpt"))
    theirs = ms.load_checkpoint(save(make_cell("mindspore"), tmp_path / "theirs.ckpt"))
    assert sorted(ours) == sorted(theirs)
    for name in ours:
        assert ours[name].shape == theirs[name].shape and ours[name].dtype == theirs[name].dtype, name
    assert any(name.startswith("adam_m.") for name in ours) and any(name.startswith("adam_v.") for name in ours)


PAIRS = [("ours", "ours"), ("ours", "mindspore"), ("mindspore", "ours")]


@pytest.mark.parametrize("source, target", PAIRS, ids=[f"{s}-to-{t}" for s, t in PAIRS])
def test_checkpoint_loads_completely_across_implementations(source, target, tmp_path):
    src = make_cell(source)
    train(src, 0, 3)
    path = save(src, tmp_path / "src.ckpt")
    dst = make_cell(target, seed=1)  # different weights, so a parameter that is not loaded shows
    assert ms.load_param_into_net(dst, ms.load_checkpoint(path)) == ([], [])
    assert_same(values(dst), values(src))


@pytest.mark.parametrize("first, then", [("ours", "ours"), ("mindspore", "ours"), ("ours", "mindspore")])
def test_resuming_equals_an_uninterrupted_run(first, then, tmp_path):
    straight = make_cell("ours")
    train(straight, 0, 20)
    before = make_cell(first)
    train(before, 0, 10)
    path = save(before, tmp_path / "step10.ckpt")
    after = make_cell(then, seed=1)
    load_param_into_net_checked(after, ms.load_checkpoint(path))
    train(after, 10, 10)
    resumed = values(after)
    assert int(resumed["global_step"][0]) == 20
    assert_same(resumed, values(straight), bitwise=BITWISE or first == then == "ours")
