"""One msrun worker for tests/distributed/test_sharding.py: AdamOffload with and without shard_state, on the CPU.

Usage: msrun --worker_num=N ... tests/workers/shard_worker.py OUT SHARD_MIN_SIZE [FROM]

Every case trains the same odd-sized net (same start on every rank, rank-dependent data, gradients
averaged by DATA_PARALLEL) and writes every parameter of its train cell to OUT/<case>_rank<r>.npz.
With two ranks (no FROM) it also saves checkpoints half-way, resumes from them across layouts and records
what loading another rank's file does; with FROM (the two-rank run's OUT) it resumes the two-rank
checkpoints on this run's ranks.
"""
import os
import sys

import numpy as np

import mindspore as ms
from mindspore import Parameter, Tensor, nn
from mindspore.communication import get_group_size, get_rank, init

from mindspore_offload import AdamOffload
from mindspore_offload.checkpoint import load_param_into_net_checked
from support.odd_net import OddTrunk, load_strictly, seeded, state, train, train_cell
from support.rank_files import RankFiles

HALF = 3  # steps before and after each checkpoint


class OddNet(OddTrunk):
    """The trunk's parameters and a one-element "scale" (decayed: the filter spares only beta and gamma)."""

    def __init__(self):
        super().__init__()
        self.scale = Parameter(Tensor(np.ones(1, np.float32)), name="scale")

    def construct(self, x):
        return self.trunk(x) * self.scale


def make_cell(sharded, nesterov, optimizer_class=AdamOffload):
    net = seeded(OddNet())
    params = net.trainable_params()
    first = [net.fc1.weight, net.fc1.bias]
    groups = [{"params": first, "lr": 0.02, "weight_decay": 0.01},
              {"params": [p for p in params if all(p is not q for q in first)], "lr": 0.005},
              {"order_params": params}]
    kwargs = {"shard_state": True} if sharded else {}
    optimizer = optimizer_class(groups, learning_rate=0.01, weight_decay=0.001, use_nesterov=nesterov, **kwargs)
    return train_cell(net, optimizer)


class Run(RankFiles):
    def whole_run(self, case, sharded, nesterov):
        cell = make_cell(sharded, nesterov)
        train(cell, self.rank, 0, 2 * HALF)
        self.save(case, state(cell))

    def checkpoint_then_resume(self, case, sharded, nesterov):
        """Trains HALF steps, saves this rank's checkpoint, trains HALF more: an uninterrupted run."""
        cell = make_cell(sharded, nesterov)
        train(cell, self.rank, 0, HALF)
        self.save_checkpoint(cell, case)
        train(cell, self.rank, HALF, HALF)
        self.save(case, state(cell))

    def resume(self, case, checkpoint, sharded, nesterov, optimizer_class=AdamOffload):
        cell = make_cell(sharded, nesterov, optimizer_class)
        if optimizer_class is AdamOffload:
            load_param_into_net_checked(cell, checkpoint)
        else:
            load_strictly(cell, checkpoint)
        train(cell, self.rank, HALF, HALF)
        self.save(case, state(cell))

    def refusal(self, case, checkpoint, sharded, min_size=None):
        """save_refusal on a fresh cell; with ``min_size``, one built under that sharding threshold."""
        previous = os.environ["MINDSPORE_OFFLOAD_SHARD_MIN_SIZE"]
        os.environ["MINDSPORE_OFFLOAD_SHARD_MIN_SIZE"] = str(min_size or previous)
        try:
            cell = make_cell(sharded, False)
        finally:
            os.environ["MINDSPORE_OFFLOAD_SHARD_MIN_SIZE"] = previous
        self.save_refusal(case, cell, checkpoint, state)


def two_ranks(run, ranks):
    ms.set_context(mode=ms.GRAPH_MODE)
    run.checkpoint_then_resume("plain", sharded=False, nesterov=False)
    run.checkpoint_then_resume("shard", sharded=True, nesterov=False)
    run.merge_checkpoints("shard", ranks)
    run.wait_for(["merged.ckpt"])
    run.resume("shard_to_plain", run.path("merged.ckpt"), sharded=False, nesterov=False)
    run.resume("plain_to_shard", run.path(f"plain_rank{run.rank}.ckpt"), sharded=True, nesterov=False)
    run.resume("shard_to_same", run.path(f"shard_rank{run.rank}.ckpt"), sharded=True, nesterov=False)
    run.refusal("slices_into_plain", run.path(f"shard_rank{run.rank}.ckpt"), sharded=False)
    # Each file records its layout: the other rank's file, or its own under another threshold (where a
    # whole moment in the file would otherwise be cut as if it were merged), is refused.
    run.refusal("other_rank", run.path(f"shard_rank{1 - run.rank}.ckpt"), sharded=True)
    run.refusal("other_threshold", run.path(f"shard_rank{run.rank}.ckpt"), sharded=True, min_size=2)
    if hasattr(nn, "AdamOffload"):
        run.resume("shard_to_mindspore", run.path("merged.ckpt"), sharded=False, nesterov=False,
                   optimizer_class=nn.AdamOffload)
    ms.set_context(mode=ms.PYNATIVE_MODE)
    run.whole_run("pynative_plain", sharded=False, nesterov=True)
    run.whole_run("pynative_shard", sharded=True, nesterov=True)


def three_ranks(run, source):
    ms.set_context(mode=ms.GRAPH_MODE)
    run.whole_run("graph_plain", sharded=False, nesterov=True)
    run.whole_run("graph_shard", sharded=True, nesterov=True)
    # The two-rank run's whole checkpoint and its merged sharded one hold the same bits, so resuming
    # either on three ranks, unsharded and sharded, must end in the same place.
    run.resume("from_plain2", os.path.join(source, "plain_rank0.ckpt"), sharded=False, nesterov=False)
    run.resume("from_shard2", os.path.join(source, "merged.ckpt"), sharded=True, nesterov=False)
    run.refusal("slices2_into_shard3", os.path.join(source, f"shard_rank{min(run.rank, 1)}.ckpt"), sharded=True)
    ms.set_context(mode=ms.PYNATIVE_MODE)
    run.whole_run("pynative_plain", sharded=False, nesterov=False)
    run.whole_run("pynative_shard", sharded=True, nesterov=False)


def main():
    out, min_size = sys.argv[1], sys.argv[2]
    source = sys.argv[3] if len(sys.argv) > 3 else None
    os.environ["MINDSPORE_OFFLOAD_SHARD_MIN_SIZE"] = min_size
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    init()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True)
    run = Run(out, get_rank())
    if source is None:
        two_ranks(run, get_group_size())
    else:
        three_ranks(run, source)
    open(run.path(f"finished_rank{run.rank}"), "w").close()


if __name__ == "__main__":
    main()
