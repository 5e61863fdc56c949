"""One data-parallel worker for tests/distributed/test_data_parallel.py, started by msrun on the CPU.

Trains the same small Dense net (same initial weights on every rank) on rank-dependent data, once with
mindspore_offload.AdamOffload and once with nn.AdamOffload (when this MindSpore has it), with the
gradients averaged over the ranks (DATA_PARALLEL, gradients_mean=True). Each writes its parameters and
optimizer state to OUT/<optimizer>_rank<r>.npz.

Usage: msrun --worker_num=2 --local_worker_num=2 ... tests/workers/dp_worker.py OUT [STEPS]
"""
import os
import sys

import numpy as np

import mindspore as ms
from mindspore import Tensor, nn
from mindspore.communication import get_group_size, get_rank, init

from mindspore_offload import AdamOffload

IN, OUT, BATCH = 8, 4, 16


def make_cell(optimizer_class):
    net = nn.Dense(IN, OUT)
    rng = np.random.default_rng(0)  # the same start on every rank, for both optimizers
    net.weight.set_data(Tensor(rng.standard_normal((OUT, IN)).astype(np.float32)))
    net.bias.set_data(Tensor(rng.standard_normal(OUT).astype(np.float32)))
    optimizer = optimizer_class(net.trainable_params(), learning_rate=0.01)
    return nn.TrainOneStepCell(nn.WithLossCell(net, nn.MSELoss()), optimizer)


def train(optimizer_class, rank, steps):
    cell = make_cell(optimizer_class)
    cell.set_train()
    rng = np.random.default_rng(100 + rank)  # each rank sees different data
    for _ in range(steps):
        x = rng.standard_normal((BATCH, IN)).astype(np.float32)
        y = rng.standard_normal((BATCH, OUT)).astype(np.float32)
        cell(Tensor(x), Tensor(y))
    return {p.name: p.asnumpy() for p in cell.get_parameters()}


def main():
    out_dir = sys.argv[1]
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    init()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True)
    rank = get_rank()
    runs = {"ours": AdamOffload}
    if hasattr(nn, "AdamOffload"):
        runs["mindspore"] = nn.AdamOffload
    for name, optimizer_class in runs.items():
        params = train(optimizer_class, rank, steps)
        np.savez(os.path.join(out_dir, f"{name}_rank{rank}.npz"), group_size=get_group_size(), **params)


if __name__ == "__main__":
    main()
