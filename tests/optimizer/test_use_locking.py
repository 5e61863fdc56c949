"""use_locking through the optimizer: training takes the same bits with the stripe locks as without
(the kernel's own locking tests are in tests/kernel/test_reliability.py)."""
import numpy as np
import pytest


def test_optimizer_use_locking_trains_the_same_bits():
    ms = pytest.importorskip("mindspore")
    from mindspore import Tensor, nn

    from mindspore_offload import AdamOffload

    def train(use_locking):
        net = nn.Dense(6, 4)
        rng = np.random.default_rng(0)
        net.weight.set_data(Tensor(rng.standard_normal((4, 6)).astype(np.float32)))
        net.bias.set_data(Tensor(rng.standard_normal(4).astype(np.float32)))
        cell = nn.TrainOneStepCell(nn.WithLossCell(net, nn.MSELoss()),
                                   AdamOffload(net.trainable_params(), learning_rate=0.01, use_locking=use_locking))
        for _ in range(5):
            cell(Tensor(rng.standard_normal((8, 6)).astype(np.float32)),
                 Tensor(rng.standard_normal((8, 4)).astype(np.float32)))
        return {p.name: p.asnumpy() for p in cell.get_parameters()}

    mode = ms.get_context("mode")
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        locked, unlocked = train(True), train(False)
    finally:
        ms.set_context(mode=mode)
    assert locked.keys() == unlocked.keys()
    for name in locked:
        assert np.array_equal(locked[name], unlocked[name]), name
    assert locked["global_step"] == 5
