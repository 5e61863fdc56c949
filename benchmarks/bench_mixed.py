"""Throughput of the 16-bit-parameter pass (adam_master_step) against the float32 apply pass.

Both move 28 bytes an element: the mixed pass reads the 16-bit gradient, master, m, v (2+4+4+4) and
writes master, m, v and the 16-bit parameter (4+4+4+2); adam_apply reads g, param, m, v and writes
param, m, v (4*4 + 3*4). Timed interleaved within every repetition (shared machines are noisy; every
row sees the same noise), medians reported. "limit" is the lab's bandwidth probe with apply's pattern
(mindspore_offload._bench, built with MINDSPORE_OFFLOAD_BENCH=1: 28 bytes an element in four float32
streams); the mixed pass moves the same bytes in five streams, two of them 16-bit, so "of limit" is a
guide. Without _bench the limit column is left out.

Needs only the compiled modules (no MindSpore):

    python benchmarks/bench_mixed.py                       # 2^20, 2^24, 2^26 on 1 and 2 threads
    python benchmarks/bench_mixed.py --sizes 20,24 --threads 1,2,4,8,16 --repeat 5
"""
import argparse
import statistics
import time

import numpy as np

from mindspore_offload import _C, kernel

try:
    from mindspore_offload import _bench
except ImportError:  # built without MINDSPORE_OFFLOAD_BENCH=1
    _bench = None

HYPER = (1e-3, 0.9, 0.999, 1e-8, 0.9 ** 10, 0.999 ** 10)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="20,24,26", help="comma-separated powers of two (default 20,24,26)")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    p.add_argument("--repeat", type=int, default=7, help="timed repetitions per size (default 7)")
    a = p.parse_args(argv)
    a.sizes = [1 << int(e) for e in a.sizes.split(",")]
    a.threads = [int(t) for t in a.threads.split(",")]
    return a


def runners(n):
    rng = np.random.default_rng(0)
    w = rng.standard_normal(n).astype(np.float32)
    m = np.zeros(n, np.float32)
    v = np.zeros(n, np.float32)
    g32 = (rng.standard_normal(n) * 1e-2).astype(np.float32)
    g16 = g32.astype(np.float16).view(np.uint16)
    out16 = np.empty(n, np.uint16)
    d = np.empty(n, np.float32)

    def master(half):
        return lambda: _C.adam_master_step(w, m, v, g16, out16, *HYPER, False, half, 0.0, False, 1.0, False)

    rows = {
        "float32 apply": lambda: _C.adam_apply(w, m, v, g32, *HYPER, False),
        "float16 master": master("float16"),
        "bfloat16 master": master("bfloat16"),
    }
    if _bench is not None:
        rows["probe (28 B)"] = lambda: _bench.bandwidth_probe("apply", kernel.active_isa(), False, m, v, g32, d)
    return rows


def main(argv=None):
    args = parse_args(argv)
    print(f"level: {kernel.active_isa()}; elements per second (median of {args.repeat}), 28 bytes an element "
          "for the passes")
    print(f"{'size':>9} {'thr':>3} {'row':<16} {'Melem/s':>9} {'GB/s':>7} {'of limit':>8} {'vs f32 apply':>12}")
    for n in args.sizes:
        for threads in args.threads:
            kernel.set_num_threads(threads)
            rows = runners(n)
            times = {name: [] for name in rows}
            for fn in rows.values():
                fn()  # warm: page faults, pool start
            for _ in range(args.repeat):
                for name, fn in rows.items():
                    t0 = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t0)
            rate = {name: n / statistics.median(t) for name, t in times.items()}
            limit = rate.get("probe (28 B)", float("nan"))
            for name in ("float32 apply", "float16 master", "bfloat16 master"):
                print(f"2^{n.bit_length() - 1:<7} {threads:>3} {name:<16} {rate[name] / 1e6:9.1f} "
                      f"{rate[name] * 28 / 1e9:7.2f} {rate[name] / limit:8.3f} "
                      f"{rate[name] / rate['float32 apply']:12.3f}")
            print(f"2^{n.bit_length() - 1:<7} {threads:>3} {'limit (28 B)':<16} {limit / 1e6:9.1f} "
                  f"{limit * 28 / 1e9:7.2f}")


if __name__ == "__main__":
    main()
