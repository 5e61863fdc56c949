"""The odd-sized net the sharding workers train (tests/workers/shard_worker.py, shard_adamw_worker.py): its
dense trunk, seeded weights, train cell, rank-dependent data and the state it is compared by."""
import numpy as np

import mindspore as ms
from mindspore import Tensor, nn


class OddTrunk(nn.Cell):
    """Dense 7 -> 33 -> 31 -> 3 with tanh between: parameters of 231, 33, 1023, 31, 93 and 3 elements,
    slices that end in padding for 2 and 3 ranks. A worker's net adds a one-element scale, under the name
    that worker needs (MindSpore's weight-decay filter reads it)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Dense(7, 33)
        self.fc2 = nn.Dense(33, 31)
        self.fc3 = nn.Dense(31, 3)
        self.tanh = nn.Tanh()

    def trunk(self, x):
        return self.fc3(self.tanh(self.fc2(self.tanh(self.fc1(x)))))


def seeded(net):
    """`net` with every trainable parameter set to 0.3 times standard normals drawn with seed 0: the same
    start on every rank."""
    rng = np.random.default_rng(0)
    for param in net.trainable_params():
        param.set_data(Tensor((0.3 * rng.standard_normal(param.shape)).astype(np.float32)))
    return net


def train_cell(net, optimizer):
    cell = nn.TrainOneStepCell(nn.WithLossCell(net, nn.MSELoss()), optimizer)
    cell.set_train()
    return cell


def train(cell, rank, first_step, steps):
    for step in range(first_step, first_step + steps):
        rng = np.random.default_rng(1000 * rank + step)
        cell(Tensor(rng.standard_normal((8, 7)).astype(np.float32)),
             Tensor(rng.standard_normal((8, 3)).astype(np.float32)))


def state(cell):
    return {name: param.asnumpy().copy() for name, param in cell.parameters_and_names()}


def load_strictly(cell, checkpoint):
    """MindSpore's own load of a checkpoint file, every parameter of `cell` found in it."""
    not_loaded, _ = ms.load_param_into_net(cell, ms.load_checkpoint(checkpoint), strict_load=True)
    assert not not_loaded, not_loaded
