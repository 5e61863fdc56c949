"""Several data-parallel ranks on one host, each stepping its own parameters with adam_apply at once:
the default pool size (each rank's share of the CPUs, mindspore_offload/_threads.py) against every rank
taking every CPU (the old default), alternating, so both see the same machine.

    python benchmarks/bench_ranks.py                      # 2 ranks, 2^24 elements each, 5 rounds
    python benchmarks/bench_ranks.py --ranks 4 --size 22 --rounds 7

Each round starts the ranks together (a barrier file) and takes the slowest rank's time for --steps
steps: that is when a data-parallel step could go on.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

WORKER = r"""
import os, sys, time
import numpy as np
from mindspore_offload import kernel
n, steps, go = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
p, m, v, g = (np.full(n, x, np.float32) for x in (0.05, 1e-3, 1e-4, 1e-2))
kernel.adam_apply(p, m, v, g, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, beta1_power=0.5, beta2_power=0.5)
while not os.path.exists(go):
    time.sleep(0.001)
t = time.perf_counter()
for _ in range(steps):
    kernel.adam_apply(p, m, v, g, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, beta1_power=0.5, beta2_power=0.5)
print(kernel.get_num_threads(), time.perf_counter() - t)
"""


def round_once(ranks, n, steps, every_cpu):
    with tempfile.TemporaryDirectory() as tmp:
        go = os.path.join(tmp, "go")
        env = {k: v for k, v in os.environ.items() if k != "MINDSPORE_OFFLOAD_NUM_THREADS"}
        env["LOCAL_WORLD_SIZE"] = str(ranks)
        if every_cpu:
            env["MINDSPORE_OFFLOAD_NUM_THREADS"] = str(len(os.sched_getaffinity(0)))
        procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(n), str(steps), go], env=env,
                                  stdout=subprocess.PIPE, text=True) for _ in range(ranks)]
        time.sleep(3.0)  # every rank imported and allocated
        open(go, "w").close()
        outs = [p.communicate()[0].split() for p in procs]
    return int(outs[0][0]), max(float(o[1]) for o in outs)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--size", type=int, default=24, help="elements per rank, a power of two (default 24)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    n = 1 << a.size
    results = {False: [], True: []}
    threads = {}
    for r in range(a.rounds):
        for every_cpu in ((False, True) if r % 2 == 0 else (True, False)):
            threads[every_cpu], t = round_once(a.ranks, n, a.steps, every_cpu)
            results[every_cpu].append(t / a.steps)
    ratios = sorted(x / y for x, y in zip(results[False], results[True]))
    print(f"{a.ranks} ranks x 2^{a.size} elements, {len(os.sched_getaffinity(0))} CPUs, {a.rounds} rounds")
    for every_cpu in (False, True):
        label = "every CPU per rank" if every_cpu else "rank share (default)"
        print(f"  {label:22s} {threads[every_cpu]} threads/rank: slowest rank {statistics.median(results[every_cpu]) * 1e3:.1f} ms"
              f"/step (median; min {min(results[every_cpu]) * 1e3:.1f})")
    print(f"  paired time ratio share / every CPU: median {statistics.median(ratios):.3f} "
          f"(min {ratios[0]:.3f}, max {ratios[-1]:.3f})")


if __name__ == "__main__":
    main()
