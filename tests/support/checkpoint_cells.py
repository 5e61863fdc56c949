"""A small train cell for the checkpoint tests (tests/checkpoint): built from seeded weights, trained on
data that depends on the step only, its parameters read back and compared, and saved."""
import numpy as np

import mindspore as ms
from mindspore import Tensor, nn


def make_cell(optimizer_cls, seed=0, **kwargs):
    """Dense(6, 5), ReLU, Dense(5, 3) from weights drawn with `seed`, in a TrainOneStepCell with
    `optimizer_cls(params, **kwargs)`."""
    net = nn.SequentialCell(nn.Dense(6, 5), nn.ReLU(), nn.Dense(5, 3))
    rng = np.random.default_rng(seed)
    for p in net.trainable_params():
        p.set_data(Tensor(rng.standard_normal(p.shape).astype(np.float32) * 0.5))
    opt = optimizer_cls(net.trainable_params(), **kwargs)
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
    """The same names, dtypes and shapes; the same bits, or with ``bitwise=False`` equal to 1e-5."""
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


def assert_same_names_and_shapes(ours, theirs, tmp_path):
    """The checkpoints of cells `ours` and `theirs` hold the same names, shapes and dtypes; returns ours
    as loaded."""
    mine = ms.load_checkpoint(save(ours, tmp_path / "ours.ckpt"))
    other = ms.load_checkpoint(save(theirs, tmp_path / "theirs.ckpt"))
    assert sorted(mine) == sorted(other)
    for name in mine:
        assert mine[name].shape == other[name].shape and mine[name].dtype == other[name].dtype, name
    return mine


def assert_loads_completely(make, source, target, tmp_path):
    """A cell of `source`'s optimizer, trained 3 steps and saved, loads into a fresh one of `target`'s
    (``make(name, seed=1)``: other weights, so a parameter that is not loaded shows) with nothing left
    over either way, and every parameter's bits arrive."""
    src = make(source)
    train(src, 0, 3)
    path = save(src, tmp_path / "src.ckpt")
    dst = make(target, seed=1)
    assert ms.load_param_into_net(dst, ms.load_checkpoint(path)) == ([], [])
    assert_same(values(dst), values(src))


def resumed_and_straight(make, first, then, tmp_path, load):
    """Every parameter of two runs to step 20: `first`'s optimizer for 10 steps, saved, loaded with
    ``load(cell, params)`` into a fresh cell of `then`'s (other weights) and trained 10 more; and "ours"
    for 20 steps straight."""
    straight = make("ours")
    train(straight, 0, 20)
    before = make(first)
    train(before, 0, 10)
    path = save(before, tmp_path / "step10.ckpt")
    after = make(then, seed=1)
    load(after, ms.load_checkpoint(path))
    train(after, 10, 10)
    return values(after), values(straight)
