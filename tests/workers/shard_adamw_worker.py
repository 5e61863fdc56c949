"""One msrun worker for tests/distributed/test_sharding_adamw.py: AdamWeightDecayOffload with and without
shard_state, on the CPU.

Usage: msrun --worker_num=N ... tests/workers/shard_adamw_worker.py OUT SHARD_MIN_SIZE

Cases, each written to OUT/<case>_rank<r>.npz: the odd-sized float32 net of shard_worker.py trained
(DATA_PARALLEL, rank-dependent data) unsharded and sharded, in GRAPH_MODE and PyNative; a sharded run
saved half-way, merged on rank 0 and resumed unsharded and by nn.AdamWeightDecay; float16 and bfloat16
parameters (with masters) beside a float32 one, given the same gradients on every rank, unsharded and
sharded.
"""
import os
import sys

import numpy as np

import mindspore as ms
from mindspore import Parameter, Tensor, nn
from mindspore.communication import get_group_size, get_rank, init

from mindspore_offload import AdamWeightDecayOffload
from mindspore_offload.checkpoint import load_param_into_net_checked
from support.odd_net import OddTrunk, load_strictly, seeded, state, train, train_cell
from support.rank_files import RankFiles

HALF = 3


class OddNet(OddTrunk):
    """The trunk's parameters and a one-element "gamma", spared the decay by name."""

    def __init__(self):
        super().__init__()
        self.gamma = Parameter(Tensor(np.ones(1, np.float32)), name="gamma")

    def construct(self, x):
        return self.trunk(x) * self.gamma


def make_cell(sharded, optimizer_class=AdamWeightDecayOffload):
    net = seeded(OddNet())
    kwargs = {"shard_state": True} if sharded else {}
    return train_cell(net, optimizer_class(net.trainable_params(), learning_rate=0.01, weight_decay=0.05, **kwargs))


HALVES = {"w16": (ms.float16, (231,)), "wbf": (ms.bfloat16, (1023,)), "w32": (ms.float32, (93,))}


def sixteen_bit(run, case, sharded):
    """16-bit parameters with masters, the same gradients on every rank (no collective on them)."""
    rng = np.random.default_rng(5)
    params = [Parameter(Tensor(rng.standard_normal(shape).astype(np.float32)).astype(dtype), name=name)
              for name, (dtype, shape) in HALVES.items()]
    kwargs = {"shard_state": True} if sharded else {}
    opt = AdamWeightDecayOffload(params, learning_rate=0.01, weight_decay=0.1, **kwargs)
    for _ in range(2 * HALF):
        opt(tuple(Tensor(rng.standard_normal(p.shape).astype(np.float32)).astype(p.dtype) for p in params))
    values = {p.name: p.astype(ms.float32).asnumpy() for p in params}
    values.update({p.name: p.asnumpy() for p in opt.get_parameters()
                   if p.name.startswith(("master.", "adam_m.", "adam_v."))})
    run.save(case, values)


def main():
    out, min_size = sys.argv[1], sys.argv[2]
    os.environ["MINDSPORE_OFFLOAD_SHARD_MIN_SIZE"] = min_size
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    init()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True)
    run = RankFiles(out, get_rank())
    ranks = get_group_size()
    for mode, tag in ((ms.GRAPH_MODE, "graph"), (ms.PYNATIVE_MODE, "pynative")):
        ms.set_context(mode=mode)
        for sharded in (False, True):
            cell = make_cell(sharded)
            train(cell, run.rank, 0, 2 * HALF)
            run.save(f"{tag}_{'shard' if sharded else 'plain'}", state(cell))
    ms.set_context(mode=ms.GRAPH_MODE)
    cell = make_cell(True)
    train(cell, run.rank, 0, HALF)
    run.save_checkpoint(cell, "half")
    run.merge_checkpoints("half", ranks)
    run.wait_for(["merged.ckpt"])
    resumed = make_cell(False)
    load_param_into_net_checked(resumed, run.path("merged.ckpt"))
    train(resumed, run.rank, HALF, HALF)
    run.save("merged_to_plain", state(resumed))
    theirs = make_cell(False, nn.AdamWeightDecay)
    load_strictly(theirs, run.path("merged.ckpt"))
    train(theirs, run.rank, HALF, HALF)
    run.save("merged_to_mindspore", state(theirs))
    sixteen_bit(run, "sixteen_plain", False)
    sixteen_bit(run, "sixteen_shard", True)
    open(run.path(f"finished_rank{run.rank}"), "w").close()


if __name__ == "__main__":
    main()
