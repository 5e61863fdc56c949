"""shard_state=True against the default, on N msrun ranks of the CPU backend: host memory and step time.

    python benchmarks/bench_shard.py                  # N=2: the 8.4M-parameter MLP, then the threshold sweep
    python benchmarks/bench_shard.py --parts sweep --ranks 2 --steps 10 --sizes 256,4096,65536

It starts msrun itself (once per layout, so each process's peak RSS is that layout's alone) and runs
this file as the worker. Two parts:

    memory   an MLP of 4 Dense(1448, 1448) layers (8.39M parameters), trained with
             nn.TrainOneStepCell in GRAPH_MODE, DATA_PARALLEL, batch 4: peak RSS of each rank after
             the steps (ru_maxrss), and the median step time
    sweep    32 parameters of S elements each, the optimizer called alone on fixed gradients: the
             median time of one optimizer step with every parameter sliced (threshold 0) and with
             every parameter whole, so the per-parameter cost of the AllGather shows against the
             host work it saves; the crossover picks the replication threshold (_sharding.SHARD_MIN_SIZE)

Timings on a machine shared with other work are noisy: say so when reporting them.
"""
import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
WIDTH, LAYERS, BATCH = 1448, 4, 4


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--steps", type=int, default=10, help="timed steps (after 3 untimed)")
    p.add_argument("--sizes", default="256,1024,4096,16384,65536", help="sweep: elements a parameter")
    p.add_argument("--parts", default="memory,sweep", help="comma-separated from memory, sweep (default both)")
    p.add_argument("--role", nargs=2, metavar=("PART", "LAYOUT"), help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def timed(step, steps):
    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def memory_worker(args, sharded, rank):
    import mindspore as ms
    from mindspore import Tensor, nn

    from mindspore_offload import AdamOffload

    net = nn.SequentialCell([nn.Dense(WIDTH, WIDTH, activation="tanh") for _ in range(LAYERS)])
    optimizer = AdamOffload(net.trainable_params(), shard_state=sharded)
    cell = nn.TrainOneStepCell(nn.WithLossCell(net, nn.MSELoss()), optimizer)
    cell.set_train()
    rng = np.random.default_rng(rank)
    x = Tensor(rng.standard_normal((BATCH, WIDTH)).astype(np.float32))
    y = Tensor(rng.standard_normal((BATCH, WIDTH)).astype(np.float32))
    step_s = timed(lambda: cell(x, y).asnumpy(), args.steps)
    moment_bytes = sum(m.size * 4 for m in optimizer.moment1) * 2
    return {"params": sum(p.size for p in net.trainable_params()), "moment_bytes": moment_bytes,
            "step_s": step_s, "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def sweep_worker(args, rank):
    import mindspore as ms
    from mindspore import Parameter, Tensor

    from mindspore_offload import AdamOffload

    results = {}
    for size in [int(s) for s in args.sizes.split(",")]:
        for threshold, layout in ((0, "sliced"), (1 << 62, "whole")):
            os.environ["MINDSPORE_OFFLOAD_SHARD_MIN_SIZE"] = str(threshold)
            params = [Parameter(Tensor(np.zeros(size, np.float32)), name=f"p{i}") for i in range(32)]
            optimizer = AdamOffload(params, shard_state=True)
            grads = tuple(Tensor(np.full(size, 0.01 * (i + 1), np.float32)) for i in range(32))
            results[f"{size}/{layout}"] = timed(lambda: (optimizer(grads), params[0].asnumpy()), args.steps)
    return results


def worker(args):
    import mindspore as ms
    from mindspore.communication import get_rank, init

    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    init()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True)
    rank = get_rank()
    part, layout = args.role
    result = memory_worker(args, layout == "sharded", rank) if part == "memory" else sweep_worker(args, rank)
    with open(os.path.join(args.out, f"{part}_{layout}_rank{rank}.json"), "w") as f:
        json.dump(result, f)


def launch(args, out, part, layout):
    msrun = shutil.which("msrun", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [msrun, f"--worker_num={args.ranks}", f"--local_worker_num={args.ranks}", f"--master_port={port}",
               "--join=True", f"--log_dir={os.path.join(out, 'logs_' + part + '_' + layout)}", os.path.abspath(__file__),
               "--role", part, layout, "--out", out, "--ranks", str(args.ranks), "--steps", str(args.steps),
               "--sizes", args.sizes]
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    subprocess.run(command, cwd=out, env=env, check=True, capture_output=True)
    results = []
    for rank in range(args.ranks):
        with open(os.path.join(out, f"{part}_{layout}_rank{rank}.json")) as f:
            results.append(json.load(f))
    return results


def main():
    args = parse_args()
    if args.role:
        return worker(args)
    out = tempfile.mkdtemp(prefix="bench_shard_")
    print(f"N={args.ranks} ranks on the CPU backend, {os.cpu_count()} CPUs; results in {out}")
    if "memory" in args.parts:
        memory_part(args, out)
    if "sweep" in args.parts:
        sweep_part(args, out)


def memory_part(args, out):
    memory = {layout: launch(args, out, "memory", layout) for layout in ("unsharded", "sharded")}
    print(f"\nmemory: MLP {LAYERS} x Dense({WIDTH}, {WIDTH}), {memory['sharded'][0]['params'] / 1e6:.2f}M parameters")
    print(f"{'layout':<10} {'rank':>4} {'moments MB':>11} {'peak RSS MB':>12} {'step ms':>8}")
    for layout, ranks in memory.items():
        for rank, r in enumerate(ranks):
            print(f"{layout:<10} {rank:>4} {r['moment_bytes'] / 2**20:>11.1f} {r['peak_rss_bytes'] / 2**20:>12.1f} "
                  f"{r['step_s'] * 1e3:>8.2f}")


def sweep_part(args, out):
    sweep = launch(args, out, "sweep", "both")
    print("\nsweep: one optimizer step over 32 parameters of S elements (rank 0, median ms)")
    print(f"{'S':>7} {'whole':>8} {'sliced':>8} {'sliced/whole':>13}")
    for size in [int(s) for s in args.sizes.split(",")]:
        whole, sliced = sweep[0][f"{size}/whole"], sweep[0][f"{size}/sliced"]
        print(f"{size:>7} {whole * 1e3:>8.3f} {sliced * 1e3:>8.3f} {sliced / whole:>13.2f}")


if __name__ == "__main__":
    main()
