"""One msrun worker for tests/distributed/test_sharding_masters.py: AdamOffload with float16/bfloat16 parameters under
DATA_PARALLEL, unsharded and with shard_state=True, on the CPU.

Usage: msrun --worker_num=N ... tests/workers/shard16_worker.py OUT

Two nets. "net": a float16 network MindSpore's CPU backend computes, trained through TrainOneStepCell's
own gradient reducer. "fed": bfloat16, float16 and float32 parameters whose per-rank gradients are made
here (the CPU backend computes no bfloat16 MatMul) and averaged by the DistributedGradReducer that
TrainOneStepCell uses. Every step returns the averaged gradients, which are saved (as raw bits) so the
test can replay them in one process. Each case writes every parameter of its cell and the gradients to
OUT/<case>_rank<r>.npz. With two ranks it also checkpoints half-way and resumes across layouts, and runs
the float16 network as on a device backend (MINDSPORE_OFFLOAD_HOST_APPLY=0).
"""
import os
import sys

import numpy as np

import mindspore as ms
from mindspore import Parameter, Tensor, nn
from mindspore.communication import get_group_size, get_rank, init
from mindspore.nn.wrap.grad_reducer import DistributedGradReducer
from mindspore.ops import functional as F

from mindspore_offload.checkpoint import load_float32_checkpoint, load_param_into_net_checked
from support.rank_files import RankFiles
from support.sharded_masters import (DTYPES, FED, HALF, SHARD_MIN_SIZE, STEPS, Holder, Loss, Net16, fed_gradients,
                                     optimizer_for, overwrite, raw)


class StepReturningGradients(nn.TrainOneStepCell):
    """TrainOneStepCell's step (its own DATA_PARALLEL gradient reducer), returning the averaged gradients."""

    def construct(self, *inputs):
        loss = self.network(*inputs)
        sens = F.fill(loss.dtype, loss.shape, self.sens)
        grads = self.grad_reducer(self.grad(self.network, self.weights)(*inputs, sens))
        return F.depend(grads, self.optimizer(grads))


class FedStep(nn.Cell):
    """The gradients given, averaged as TrainOneStepCell averages them, then the optimizer's step.

    Two calls, not one graph: in one graph with the optimizer, given the gradients as graph inputs, the
    float32 gradients (those the reducer does not cast) read back as other values than their mean, and
    the float32 parameters end a few ulps away from a run fed the mean; nn.AdamOffload does exactly the
    same there (MindSpore 2.10, CPU backend, checked by hand), so it is MindSpore's, not this package's."""

    def __init__(self, optimizer):
        super().__init__(auto_prefix=False)
        self.optimizer = optimizer
        self.grad_reducer = DistributedGradReducer(optimizer.parameters, mean=True, degree=get_group_size())

    def step(self, grads):
        grads = self.grad_reducer(grads)
        self.optimizer(grads)
        return grads


def make_cell(net, sharded, nesterov):
    if net == "net":
        model = Net16()
        loss = Loss(model)  # first: it gives the parameters their "net." names, which the state's names take
        optimizer = optimizer_for(model.trainable_params(), [model.fc1.weight, model.fc1.bias], net, sharded,
                                  nesterov)
        cell = StepReturningGradients(loss, optimizer)
    else:
        holder = Holder()
        cell = FedStep(optimizer_for(holder.params, [holder.a16, holder.f32], net, sharded, nesterov))
        cell.holder = holder
    cell.set_train()
    return cell


def train(cell, net, rank, first_step, steps, record):
    for step in range(first_step, first_step + steps):
        if net == "net":
            rng = np.random.default_rng(1000 * rank + step)
            grads = cell(Tensor(rng.standard_normal((8, 7)).astype(np.float16)),
                         Tensor(rng.standard_normal((8, 9)).astype(np.float32)))
        else:
            local = fed_gradients(rank, step)
            grads = cell.step(tuple(Tensor(local[name]).astype(DTYPES[FED[name][0]]) for name in FED))
        for param, grad in zip(cell.optimizer._parameters, grads):
            record[f"grad{step}:{param.name}"] = raw(grad)


def state(cell):
    return {param.name: raw(param) for param in cell.get_parameters()}


class Run16(RankFiles):
    def whole_run(self, case, net, sharded, nesterov):
        cell = make_cell(net, sharded, nesterov)
        record = {}
        train(cell, net, self.rank, 0, STEPS, record)
        self.save(case, {**state(cell), **record})

    def checkpoint_then_resume(self, case, net, sharded):
        cell = make_cell(net, sharded, False)
        record = {}
        train(cell, net, self.rank, 0, HALF, record)
        self.save_checkpoint(cell, case)
        train(cell, net, self.rank, HALF, STEPS - HALF, record)
        self.save(case, {**state(cell), **record})

    def written_run(self, case, net, sharded):
        """HALF steps, then every parameter written with set_data (as a user loading weights would), then
        the rest: the next steps must continue from the written values, sharded or not."""
        cell = make_cell(net, sharded, False)
        record = {}
        train(cell, net, self.rank, 0, HALF, record)
        overwrite(cell.optimizer._parameters)
        train(cell, net, self.rank, HALF, STEPS - HALF, record)
        self.save(case, {**state(cell), **record})

    def resume(self, case, net, checkpoint, sharded, loader=load_param_into_net_checked):
        cell = make_cell(net, sharded, False)
        loader(cell, checkpoint)
        train(cell, net, self.rank, HALF, STEPS - HALF, {})
        self.save(case, state(cell))

    def refusal(self, case, net, checkpoint, sharded):
        self.save_refusal(case, make_cell(net, sharded, False), checkpoint, state)

    def bad_gradient(self, case):
        """A sharded step given a gradient of the wrong shape for a sliced bfloat16 parameter."""
        cell = make_cell("fed", True, False)
        before = state(cell)
        grads = [Tensor(np.ones(shape, np.float32)).astype(DTYPES[dtype]) for dtype, shape in FED.values()]
        grads[1] = Tensor(np.ones(1002, np.float32)).astype(ms.bfloat16)  # b16 is (1003,)
        try:
            cell.step(tuple(grads))
            message = "stepped"
        except ValueError as error:
            message = str(error)
        unchanged = all(np.array_equal(before[k], v) for k, v in state(cell).items())
        self.save(case, {"message": np.array(message), "unchanged": np.array(unchanged)})

    def reducer_check(self):
        """What DistributedGradReducer makes of 16-bit gradients: float16 values whose sum overflows
        float16, and bfloat16 ones (whose AllReduce the CPU backend refuses)."""
        out = {}
        for dtype, values in (("float16", [60000.0, 1.0 + self.rank * 2.0 ** -10, 2.0 ** -24 * self.rank]),
                              ("bfloat16", [3.0e38, 1.0 + self.rank * 2.0 ** -7, 257.0 + 2 * self.rank])):
            param = Parameter(Tensor(np.zeros(3, np.float32)).astype(DTYPES[dtype]), name=f"reduced_{dtype}")
            reducer = DistributedGradReducer([param], mean=True, degree=get_group_size())
            got = reducer((Tensor(np.array(values, np.float32)).astype(DTYPES[dtype]),))[0]
            out[dtype] = raw(got)
        self.save("reducer", out)


def float32_checkpoint(merged, out):
    """The merged checkpoint as a float32 network's: every 16-bit parameter replaced by its master."""
    state = ms.load_checkpoint(merged)
    entries = [{"name": name, "data": state.get("master." + name, value)}
               for name, value in state.items() if not name.startswith("master.")]
    ms.save_checkpoint(entries, out + ".tmp.ckpt")
    os.replace(out + ".tmp.ckpt", out)


def two_ranks(run, ranks):
    ms.set_context(mode=ms.GRAPH_MODE)
    run.reducer_check()
    run.bad_gradient("fed_bad_gradient")
    for net in ("net", "fed"):
        run.checkpoint_then_resume(f"{net}_plain", net, sharded=False)
        run.checkpoint_then_resume(f"{net}_shard", net, sharded=True)
    merged = run.merge_checkpoints("net_shard", ranks)
    if run.rank == 0:
        float32_checkpoint(merged, run.path("float32.ckpt"))
    run.wait_for(["merged.ckpt", "float32.ckpt"])
    run.resume("net_shard_to_plain", "net", run.path("merged.ckpt"), sharded=False)
    run.resume("net_plain_to_shard", "net", run.path(f"net_plain_rank{run.rank}.ckpt"), sharded=True)
    run.resume("net_shard_to_same", "net", run.path(f"net_shard_rank{run.rank}.ckpt"), sharded=True)
    run.resume("net_float32_to_shard", "net", run.path("float32.ckpt"), sharded=True, loader=load_float32_checkpoint)
    run.refusal("net_slices_into_plain", "net", run.path(f"net_shard_rank{run.rank}.ckpt"), sharded=False)
    run.refusal("net_other_rank", "net", run.path(f"net_shard_rank{1 - run.rank}.ckpt"), sharded=True)
    # As on a device backend: the op returns the new 16-bit value (the slice: cut, gathered and assigned
    # in the graph). The CPU backend can do that for float16 only.
    run.written_run("fed_written_plain", "fed", sharded=False)
    run.written_run("fed_written_shard", "fed", sharded=True)
    os.environ["MINDSPORE_OFFLOAD_HOST_APPLY"] = "0"
    run.whole_run("device_net_plain", "net", sharded=False, nesterov=False)
    run.whole_run("device_net_shard", "net", sharded=True, nesterov=False)
    run.written_run("device_net_written_plain", "net", sharded=False)
    run.written_run("device_net_written_shard", "net", sharded=True)
    del os.environ["MINDSPORE_OFFLOAD_HOST_APPLY"]
    ms.set_context(mode=ms.PYNATIVE_MODE)
    for net in ("net", "fed"):
        run.whole_run(f"pynative_{net}_plain", net, sharded=False, nesterov=True)
        run.whole_run(f"pynative_{net}_shard", net, sharded=True, nesterov=True)


def three_ranks(run):
    ms.set_context(mode=ms.GRAPH_MODE)
    run.whole_run("net_plain", "net", sharded=False, nesterov=False)
    run.whole_run("net_shard", "net", sharded=True, nesterov=False)
    run.whole_run("fed_plain", "fed", sharded=False, nesterov=True)
    run.whole_run("fed_shard", "fed", sharded=True, nesterov=True)


def main():
    out = sys.argv[1]
    os.environ["MINDSPORE_OFFLOAD_SHARD_MIN_SIZE"] = str(SHARD_MIN_SIZE)
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    init()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True)
    run = Run16(out, get_rank())
    ranks = get_group_size()
    two_ranks(run, ranks) if ranks == 2 else three_ranks(run)
    open(run.path(f"finished_rank{run.rank}"), "w").close()


if __name__ == "__main__":
    main()
