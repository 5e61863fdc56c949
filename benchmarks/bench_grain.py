"""The thread pool's grain on the CPU at hand.

A pass over n elements runs on one thread below 2 * grain (up to two threads) or grain / 2 (more),
else on min(threads, n / (grain / 8)) threads (csrc/threadpool.cpp; before 2026-11-27 it ran on
min(threads, n / grain) threads). Every repetition runs the float32 apply
pass once per grain (and DeepSpeed's cpu_adam, where importable, on the same buffers), in a random
order; the table gives each grain's median time as a ratio to the current grain's (< 1: faster) and
DeepSpeed's time over the current grain's. Needs the lab build (MINDSPORE_OFFLOAD_BENCH=1):

    python benchmarks/bench_grain.py --sizes 16,18,20,22 --threads 16 --grains 14,15,16,17
"""
import argparse
import statistics
import time

import numpy as np

from bench_kernel import HYPER, Buffers, Peers, lr_powers
from mindspore_offload import _bench


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="16,18,20,22", help="comma-separated powers of two")
    p.add_argument("--threads", default="2", help="comma-separated thread counts")
    p.add_argument("--grains", default="14,15,16,17", help="comma-separated powers of two")
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--no-peers", action="store_true")
    a = p.parse_args(argv)
    a.sizes = [1 << int(e) for e in a.sizes.split(",")]
    a.threads = [int(t) for t in a.threads.split(",")]
    a.grains = [1 << int(e) for e in a.grains.split(",")]
    return a


def timed(fn, inner):
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def main(argv=None):
    args = parse_args(argv)
    saved = _bench.get_tuning()
    current = saved["grain"]
    grains = sorted(set(args.grains) | {current})
    peers = Peers(not args.no_peers)
    print(f"level {_bench.active_isa()}; current grain 2^{current.bit_length() - 1}; {args.repeat} repetitions; "
          "time ratios to the current grain, median [min-max]")
    rng = np.random.default_rng(0)
    try:
        for n in args.sizes:
            b = Buffers(n, rng)
            for threads in args.threads:
                _bench.set_num_threads(threads)
                rows = {}
                for g in grains:
                    def ours(g=g):
                        _bench.set_tuning(grain=g)
                        _bench.adam_apply(b.p, b.m, b.v, b.g, *lr_powers(), False)
                    rows[f"grain 2^{g.bit_length() - 1}"] = (ours, None)
                if peers.ds is not None:
                    t = peers.torch
                    p, g_, m, v = (t.from_numpy(x) for x in (b.p, b.g, b.m, b.v))
                    h = HYPER

                    def ds():
                        peers.ds.adam_update(0, h["step"], h["lr"], h["beta1"], h["beta2"], h["eps"], 0.0, True,
                                             p, g_, m, v)
                    rows["deepspeed"] = (ds, lambda: t.set_num_threads(threads))
                for fn, prep in rows.values():  # warm, and pick the inner count from the slowest
                    if prep:
                        prep()
                    fn()
                inner = max(1, int(0.01 / max(timed(fn, 1) for fn, _ in rows.values())))
                samples = {name: [] for name in rows}
                order = np.random.default_rng(n + threads)
                names = list(rows)
                for _ in range(args.repeat):
                    for i in order.permutation(len(names)):
                        fn, prep = rows[names[i]]
                        if prep:
                            prep()
                        samples[names[i]].append(timed(fn, inner))
                base = samples[f"grain 2^{current.bit_length() - 1}"]
                cells = []
                for name, s in samples.items():
                    r = [x / y for x, y in zip(s, base)]
                    cells.append(f"{name} {statistics.median(r):.3f} [{min(r):.2f}-{max(r):.2f}]")
                print(f"2^{n.bit_length() - 1:<3} t{threads:<3} {statistics.median(base) * 1e6:9.1f} us | " + " | ".join(cells),
                      flush=True)
    finally:
        _bench.set_tuning(**saved)


if __name__ == "__main__":
    main()
