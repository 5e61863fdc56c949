"""Whole training steps where the optimizer dominates, in GRAPH_MODE: ours against MindSpore's.

Two models, each trained with nn.TrainOneStepCell(nn.WithLossCell(net, loss), optimizer):

    wide     an MLP of 4 Dense(4096, 4096) layers (67.1M parameters), batch 4: the step is one
             forward/backward of a tiny batch plus one Adam pass over 67M elements, so it is bound
             by the optimizer's memory traffic
    small    300 Dense(16, 16) layers (600 parameter tensors of 256 or 16 elements): the Adam
             arithmetic is negligible and the per-tensor cost of each optimizer call rules

and four optimizers on the same initial weights: mindspore_offload.AdamOffload ("ours"; on the CPU
backend it updates the parameter on the host in the same pass as the moments), the same class built
with MINDSPORE_OFFLOAD_HOST_APPLY=0 ("ours (delta + assign_add)": the kernel returns delta and
MindSpore adds it to the parameter, the path Ascend and GPU use), nn.AdamOffload and nn.Adam. Every step cell is compiled and warmed up first; then each repetition
runs one step of every optimizer in turn (interleaved, so all see the same noise), and medians
and the ratios of medians are reported.

    python benchmarks/bench_train.py                 # both models, 15 repetitions
    python benchmarks/bench_train.py --quick         # 5 repetitions
    python benchmarks/bench_train.py --models small --repeat 30 --out-dir /tmp/bench
"""
import argparse
import csv
import os
import statistics
import sys
import time

import numpy as np

import mindspore as ms
from mindspore import Tensor, nn

from mindspore_offload import AdamOffload


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="wide,small", help="comma-separated from wide, small (default both)")
    p.add_argument("--repeat", type=int, default=None, help="timed steps per optimizer (default 15, quick 5)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per optimizer after compiling")
    p.add_argument("--out-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
                   help="where train_step.csv goes (default benchmarks/results)")
    p.add_argument("--quick", action="store_true", help="fewer repetitions: a smoke run")
    a = p.parse_args(argv)
    a.models = a.models.split(",")
    if a.repeat is None:
        a.repeat = 5 if a.quick else 15
    return a


def wide_net():
    return nn.SequentialCell([nn.Dense(4096, 4096, activation="relu") for _ in range(3)] + [nn.Dense(4096, 4096)])


def small_net():
    return nn.SequentialCell([nn.Dense(16, 16, activation="relu") for _ in range(300)])


MODELS = {  # name: (network factory, input shape, label shape)
    "wide": (wide_net, (4, 4096), (4, 4096)),
    "small": (small_net, (4, 16), (4, 16)),
}

def delta_path_adam_offload(params, **kwargs):
    """AdamOffload on the delta + assign_add path: MINDSPORE_OFFLOAD_HOST_APPLY=0 is read at construction."""
    key = "MINDSPORE_OFFLOAD_HOST_APPLY"
    before = os.environ.get(key)
    os.environ[key] = "0"
    try:
        opt = AdamOffload(params, **kwargs)
    finally:
        if before is None:
            del os.environ[key]
        else:
            os.environ[key] = before
    assert not opt.apply_on_host
    return opt


OPTIMIZERS = {
    "ours": AdamOffload,
    "ours (delta + assign_add)": delta_path_adam_offload,
    "nn.AdamOffload": nn.AdamOffload,
    "nn.Adam": nn.Adam,
}


def step_cells(model):
    """One TrainOneStepCell per optimizer, all starting from the same weights."""
    make, x_shape, y_shape = MODELS[model]
    ms.set_seed(0)
    reference = make()
    weights = {p.name: p.asnumpy() for p in reference.trainable_params()}
    del reference
    cells = {}
    for name, opt_cls in OPTIMIZERS.items():
        net = make()
        for p in net.trainable_params():
            p.set_data(Tensor(weights[p.name]))
        opt = opt_cls(net.trainable_params(), learning_rate=1e-4)
        if name == "ours":
            print(f"  ours: apply_on_host={opt.apply_on_host}", flush=True)
        cell = nn.TrainOneStepCell(nn.WithLossCell(net, nn.MSELoss()), opt)
        cell.set_train()
        cells[name] = cell
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal(x_shape, dtype=np.float32))
    y = Tensor(rng.standard_normal(y_shape, dtype=np.float32))
    n_params = sum(p.size for p in cells["ours"].network.trainable_params())
    n_tensors = len(cells["ours"].network.trainable_params())
    return cells, x, y, n_params, n_tensors


def step_time(cell, x, y):
    t = time.perf_counter()
    loss = cell(x, y)
    loss.asnumpy()  # waits for the whole step, optimizer included
    return time.perf_counter() - t


def run_model(model, args):
    cells, x, y, n_params, n_tensors = step_cells(model)
    print(f"{model}: {n_params / 1e6:.1f}M parameters in {n_tensors} tensors", flush=True)
    for name, cell in cells.items():
        t = time.perf_counter()
        for _ in range(args.warmup + 1):  # the first step compiles
            step_time(cell, x, y)
        print(f"  compiled and warmed {name} in {time.perf_counter() - t:.1f} s", flush=True)
    samples = {name: [] for name in cells}
    for _ in range(args.repeat):
        for name, cell in cells.items():
            samples[name].append(step_time(cell, x, y))
    return {name: statistics.median(s) for name, s in samples.items()}, samples, n_params, n_tensors


def main(argv=None):
    args = parse_args(argv)
    ms.set_context(mode=ms.GRAPH_MODE)
    os.makedirs(args.out_dir, exist_ok=True)
    csv_path = os.path.join(args.out_dir, "train_step.csv")
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "parameters", "tensors", "optimizer", "median_step_s", "ratio_to_nn.AdamOffload",
                    "ratio_to_nn.Adam", "paired_ratio_to_nn.AdamOffload", "samples"])
        for model in args.models:
            med, samples, n_params, n_tensors = run_model(model, args)
            base = med["nn.AdamOffload"]
            print(f"  {'optimizer':26s} {'median step':>12s} {'/ nn.AdamOffload':>17s} {'paired':>8s} {'/ nn.Adam':>10s}")
            for name, t in med.items():
                # The ratio of each repetition's neighbouring steps, then its median: robust to slow drifts.
                paired = statistics.median(a / b for a, b in zip(samples[name], samples["nn.AdamOffload"]))
                print(f"  {name:26s} {t * 1e3:9.2f} ms {t / base:17.3f} {paired:8.3f} {t / med['nn.Adam']:10.3f}")
                w.writerow([model, n_params, n_tensors, name, f"{t:.6g}", f"{t / base:.4f}",
                            f"{t / med['nn.Adam']:.4f}", f"{paired:.4f}", len(samples[name])])
            f.flush()
            sys.stdout.flush()
    print(f"\nwrote {csv_path}")


if __name__ == "__main__":
    main()
