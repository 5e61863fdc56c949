"""The optimizer's time per training step on real models' parameter shapes, in GRAPH_MODE.

Two sets of parameters, each trained with nn.TrainOneStepCell on the cheapest loss that gives every
parameter a dense gradient, the sum of all their elements (forward: one read of each parameter;
backward: one fill of each gradient), so the step is mostly the optimizer's:

    bert     BERT-base's 199 trainable tensors, 109.5M elements: word (30522x768), position (512x768)
             and token-type (2x768) embeddings and their LayerNorm, 12 layers of four 768x768 attention
             matrices, 768x3072 and 3072x768 feed-forward matrices, their biases and two LayerNorms,
             and the 768x768 pooler
    small    600 tensors of 64 elements (38,400 elements): the per-tensor cost alone

The optimizer's time a step is a step's time minus that of the same step with an optimizer that updates
nothing (it only waits for the gradients), the two steps run next to each other. It is compared with
nn.AdamOffload's, measured the same way, and with one kernel.adam_apply call over flat arrays of the
same number of elements (the same pass with one tensor, no graph). Each repetition runs all of them
(no-update step, ours at each pool spin bound asked for, nn.AdamOffload, flat pass) in a random order;
the tables give medians and the paired ratios of each repetition, with quartiles. `--spins 0,100` steps
the same compiled cell with the pool's spin bound (MINDSPORE_OFFLOAD_SPIN_US) set to each value in
turn: 0 sleeps after every pass, as the pool did before it spun.

    python benchmarks/bench_models.py                       # both, 15 repetitions
    python benchmarks/bench_models.py --models bert --spins 0,100 --repeat 11
"""
import argparse
import os
import random
import statistics
import sys
import time

import numpy as np

import mindspore as ms
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops

from mindspore_offload import AdamOffload, _C, kernel

HIDDEN, FFN, LAYERS, VOCAB, POSITIONS, TYPES = 768, 3072, 12, 30522, 512, 2


def bert_base_shapes():
    """BERT-base's trainable parameter shapes, in the order the model lists them."""
    shapes = [(VOCAB, HIDDEN), (POSITIONS, HIDDEN), (TYPES, HIDDEN), (HIDDEN,), (HIDDEN,)]
    for _ in range(LAYERS):
        for _ in range(4):  # query, key, value, attention output
            shapes += [(HIDDEN, HIDDEN), (HIDDEN,)]
        shapes += [(HIDDEN,), (HIDDEN,)]  # attention LayerNorm
        shapes += [(FFN, HIDDEN), (FFN,), (HIDDEN, FFN), (HIDDEN,)]
        shapes += [(HIDDEN,), (HIDDEN,)]  # output LayerNorm
    shapes += [(HIDDEN, HIDDEN), (HIDDEN,)]  # pooler
    return shapes


MODELS = {
    "bert": bert_base_shapes,
    "small": lambda: [(64,)] * 600,
}


class Group(nn.Cell):
    """Up to GROUP of the parameters, and the sum of their elements."""

    def __init__(self, shapes, first, rng):
        super().__init__()
        self.weights = ParameterTuple(
            Parameter(Tensor(rng.standard_normal(s, dtype=np.float32) * 0.02), name=f"w{first + i}")
            for i, s in enumerate(shapes))

    def construct(self, loss):
        for w in self.weights:
            loss = loss + w.sum()
        return loss


GROUP = 16  # parameters a Group: a graph unrolls each loop, and 600 in one chain pass the parser's depth


class Shapes(nn.Cell):
    """Parameters of the given shapes (the same values for the same seed); the loss is the sum of their elements."""

    def __init__(self, shapes, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.groups = nn.CellList([Group(shapes[i:i + GROUP], i, rng) for i in range(0, len(shapes), GROUP)])

    def construct(self, x):
        loss = x
        for group in self.groups:
            loss = group(loss)
        return loss


class NoUpdate(nn.Optimizer):
    """Takes the gradients and updates nothing: the step without an optimizer's work."""

    def __init__(self, params):
        super().__init__(1e-4, params)

    def construct(self, gradients):
        return ops.depend(True, gradients)


OPTIMIZERS = {
    "no update": NoUpdate,
    "ours": lambda params: AdamOffload(params, learning_rate=1e-4),
    "nn.AdamOffload": lambda params: nn.AdamOffload(params, learning_rate=1e-4),
}


def step_time(cell, x):
    t = time.perf_counter()
    cell(x).asnumpy()  # waits for the whole step, optimizer included
    return time.perf_counter() - t


def flat_pass(n):
    rng = np.random.default_rng(1)
    p, g = (rng.standard_normal(n, dtype=np.float32) for _ in range(2))
    m, v = np.zeros(n, np.float32), np.zeros(n, np.float32)
    hyper = dict(lr=1e-4, beta1=0.9, beta2=0.999, eps=1e-8, beta1_power=0.9 ** 3, beta2_power=0.999 ** 3)

    def run():
        t = time.perf_counter()
        kernel.adam_apply(p, m, v, g, **hyper)
        return time.perf_counter() - t
    return run


def quartiles(values):
    q = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return statistics.median(values), q[0], q[2]


def with_spin(us, run):
    """run() with the pool's spin bound at `us` microseconds (None: as it is)."""
    if us is None:
        return run

    def spun():
        _C.override_thresholds(None, None, us)
        return run()
    return spun


def run_model(model, args):
    shapes = MODELS[model]()
    cells = {}
    for name, make in OPTIMIZERS.items():
        net = Shapes(shapes)  # the same weights in every cell
        cell = nn.TrainOneStepCell(net, make(net.trainable_params()))
        cell.set_train()
        cells[name] = cell
    n = sum(int(np.prod(s)) for s in shapes)
    print(f"{model}: {len(shapes)} tensors, {n / 1e6:.2f}M elements; {kernel.get_num_threads()} threads, "
          f"spin {kernel_spin()} us", flush=True)
    x = Tensor(np.float32(0))
    for name, cell in cells.items():
        t = time.perf_counter()
        for _ in range(args.warmup + 1):  # the first step compiles
            step_time(cell, x)
        print(f"  compiled and warmed {name} in {time.perf_counter() - t:.1f} s", flush=True)
    default_spin = _C.thresholds()["spin_us"]
    runs = {name: (lambda c=cell: step_time(c, x)) for name, cell in cells.items() if name != "ours"}
    for us in args.spins:
        runs[ours_name(us)] = with_spin(us, lambda c=cells["ours"]: step_time(c, x))
    runs["flat"] = with_spin(default_spin if args.spins != [None] else None, flat_pass(n))
    for _ in range(args.warmup):
        runs["flat"]()
    samples = {name: [] for name in runs}
    order = random.Random(0)
    names = list(runs)
    for _ in range(args.repeat):
        order.shuffle(names)
        for name in names:
            samples[name].append(runs[name]())
    return samples


def ours_name(us):
    return "ours" if us is None else f"ours spin {us}"


def kernel_spin():
    return _C.thresholds()["spin_us"]


def report(samples):
    base = samples["no update"]
    names = [n for n in samples if n.startswith("ours")] + ["nn.AdamOffload"]
    share = {name: [s - b for s, b in zip(samples[name], base)] for name in names}
    flat = samples["flat"]
    fmt = "{:.2f} [{:.2f}-{:.2f}]"
    print(f"  {'':26s} median ms [quartiles]")
    for name in ["no update"] + names:
        print(f"  step, {name:20s} " + fmt.format(*(x * 1e3 for x in quartiles(samples[name]))))
    for name in names:
        print(f"  optimizer, {name:15s} " + fmt.format(*(x * 1e3 for x in quartiles(share[name]))))
    print(f"  {'flat adam_apply':26s} " + fmt.format(*(x * 1e3 for x in quartiles(flat))))
    print("  paired ratios of the optimizer's time, median [quartiles]:")
    for name in names:
        if name != "nn.AdamOffload":
            r = [a / b for a, b in zip(share[name], share["nn.AdamOffload"])]
            print(f"    {name} / nn.AdamOffload".ljust(36) + fmt.format(*quartiles(r)))
        r = [a / b for a, b in zip(share[name], flat)]
        print(f"    {name} / flat pass".ljust(36) + fmt.format(*quartiles(r)))
    ours = [n for n in names if n.startswith("ours")]
    if len(ours) > 1:
        for name in ours[1:]:
            r = [a / b for a, b in zip(share[name], share[ours[0]])]
            print(f"    {name} / {ours[0]}".ljust(36) + fmt.format(*quartiles(r)))
    sys.stdout.flush()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="bert,small", help="comma-separated from bert, small")
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per optimizer after compiling")
    p.add_argument("--spins", default="", help="comma-separated pool spin bounds (us) to step ours with, "
                   "interleaved; default: the bound in force only")
    args = p.parse_args(argv)
    args.spins = [int(x) for x in args.spins.split(",") if x] or [None]
    # 600 parameters pass GRAPH_MODE's default call depth (1000) in an optimizer's per-parameter tuples.
    ms.set_context(mode=ms.GRAPH_MODE, max_call_depth=10000)
    for model in args.models.split(","):
        report(run_model(model, args))


if __name__ == "__main__":
    main()
