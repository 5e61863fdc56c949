"""One msrun worker for tests/distributed/test_killed_rank.py: data-parallel training that loses a rank, then resumes.

    msrun ... tests/workers/kill_worker.py OUT first  STEPS KILL_AFTER
    msrun ... tests/workers/kill_worker.py OUT resume STEPS

'first': trains STEPS steps uninterrupted and writes OUT/reference_rank<r>.npz; then trains again from
the same start with LatestCheckpoint saving every step, and rank 1 SIGKILLs itself as step KILL_AFTER + 1
begins (after writing the time to OUT/killed_at). 'resume': every rank loads its file for the newest
step all ranks saved (find_resume_checkpoint, load_param_into_net_checked), trains the remaining steps
and writes OUT/resumed_rank<r>.npz. The data of a step depends only on the rank and the step.
"""
import os
import signal
import sys
import time

import numpy as np

import mindspore as ms
import mindspore.dataset as ds
from mindspore import Tensor, nn
from mindspore.communication import get_group_size, get_rank, init
from mindspore.train.callback import Callback, CheckpointConfig

from mindspore_offload import AdamOffload, LatestCheckpoint, load_param_into_net_checked
from mindspore_offload.latest import find_resume_checkpoint

IN, OUT, BATCH, PREFIX = 8, 4, 16, "dp"


def make_model():
    net = nn.SequentialCell(nn.Dense(IN, 16), nn.ReLU(), nn.Dense(16, OUT))
    rng = np.random.default_rng(0)  # the same start on every rank and in every phase
    for p in net.trainable_params():
        p.set_data(Tensor(rng.standard_normal(p.shape).astype(np.float32) * 0.5))
    optimizer = AdamOffload(net.trainable_params(), learning_rate=0.01)
    return ms.Model(net, loss_fn=nn.MSELoss(), optimizer=optimizer)


def dataset(rank, steps, start):
    rng = np.random.default_rng(100 + rank)
    x = rng.standard_normal((steps, BATCH, IN)).astype(np.float32)
    y = rng.standard_normal((steps, BATCH, OUT)).astype(np.float32)
    return ds.NumpySlicesDataset({"x": x[start:], "y": y[start:]}, shuffle=False)


def state(model):
    return {p.name: p.asnumpy() for p in model.train_network.get_parameters()}


class KillAfter(Callback):
    """SIGKILLs this process as step `after + 1` begins: after `after` steps are saved, mid-training."""

    def __init__(self, after, stamp):
        super().__init__()
        self.after, self.stamp = after, stamp

    def on_train_step_begin(self, run_context):
        if run_context.original_args().cur_step_num == self.after + 1:
            with open(self.stamp, "w") as f:
                f.write(repr(time.time()))
            os.kill(os.getpid(), signal.SIGKILL)


def main():
    out, phase, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    init()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True)
    rank = get_rank()
    ckpt_dir = os.path.join(out, "ckpt")
    if phase == "first":
        model = make_model()
        model.train(1, dataset(rank, steps, 0), dataset_sink_mode=False)
        np.savez(os.path.join(out, f"reference_rank{rank}.npz"), **state(model))

        kill_after = int(sys.argv[4])
        model = make_model()
        callbacks = [LatestCheckpoint(PREFIX, ckpt_dir, CheckpointConfig(save_checkpoint_steps=1))]
        if rank == 1:
            callbacks.append(KillAfter(kill_after, os.path.join(out, "killed_at")))
        model.train(1, dataset(rank, steps, 0), callbacks=callbacks, dataset_sink_mode=False)
        raise SystemExit(f"rank {rank} trained all {steps} steps, but rank 1 should have been killed")
    step, paths = find_resume_checkpoint(ckpt_dir, PREFIX, get_group_size())
    model = make_model()
    load_param_into_net_checked(model.train_network, paths[rank])
    with open(os.path.join(out, f"resumed_from_rank{rank}"), "w") as f:
        f.write(str(step))
    model.train(1, dataset(rank, steps, step), dataset_sink_mode=False)
    np.savez(os.path.join(out, f"resumed_rank{rank}.npz"), **state(model))


if __name__ == "__main__":
    main()
