"""Throughput of the 16-bit-parameter pass (adam_master_step) against the float32 apply pass.

Both move 28 bytes an element: the master pass reads the 16-bit gradient, master, m, v (2+4+4+4) and
writes master, m, v and the 16-bit parameter (4+4+4+2); the "+check" rows also read the parameter first
(it is the output, as on the CPU backend), to restart the master wherever the parameter was written since
the last step, and "vs unchecked" is their paired ratio to the same pass without it; adam_apply reads g, param, m, v and writes
param, m, v (4*4 + 3*4). Every repetition runs each row once, one after another, so the ratios are
paired: "vs f32 apply" and "of limit" are medians of per-repetition ratios, with their spread
(min-max) beside them. Each row has its own state and gradients of its own type.

The limits come from the lab build (mindspore_offload._bench, MINDSPORE_OFFLOAD_BENCH=1): "probe
(28 B)" moves apply's four float32 streams, "probe master" (the lab's bandwidth_probe_master) the master
pass's five streams, two of them 16-bit, each with almost no arithmetic. Without _bench the limit
columns are left out.

Needs only the compiled modules (no MindSpore):

    python benchmarks/bench_masters.py                     # 2^20, 2^24, 2^26 on 1 and 2 threads
    python benchmarks/bench_masters.py --sizes 20,24 --threads 1,2,4,8,16 --repeat 5 --csv out.csv
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
    p.add_argument("--csv", help="also write the table to this CSV file")
    a = p.parse_args(argv)
    a.sizes = [1 << int(e) for e in a.sizes.split(",")]
    a.threads = [int(t) for t in a.threads.split(",")]
    return a


def to_bfloat16(x):
    """bfloat16 bits of finite float32 values, rounded to nearest even."""
    bits = x.view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def runners(n):
    """One row per pass, each on its own copy of the state, with gradients of its own type.

    A bfloat16 row fed float16 bit patterns would see gradients near 1e-19, whose squares are
    denormal: the timing would be of the CPU's denormal assists, not of the pass.
    """
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(n).astype(np.float32)
    g32 = (rng.standard_normal(n) * 1e-2).astype(np.float32)
    grads = {"float16": g32.astype(np.float16).view(np.uint16), "bfloat16": to_bfloat16(g32)}

    def state():
        return w0.copy(), np.zeros(n, np.float32), np.zeros(n, np.float32)

    def apply():
        w, m, v = state()
        return lambda: _C.adam_apply(w, m, v, g32, *HYPER, False)

    def master(half, check=False):
        w, m, v = state()
        g16, out16 = grads[half], np.empty(n, np.uint16)
        param = out16 if check else None  # the parameter in place, read before it is written
        return lambda: _C.adam_master_step(w, m, v, g16, out16, param, *HYPER, False, half, 0.0, False, 1.0, False)

    rows = {"float32 apply": apply(), "float16 master": master("float16"), "bfloat16 master": master("bfloat16"),
            "float16 master+check": master("float16", True), "bfloat16 master+check": master("bfloat16", True)}
    if _bench is not None:
        m, v, d = np.zeros(n, np.float32), np.zeros(n, np.float32), np.empty(n, np.float32)
        p = w0.copy()
        ones16 = np.full(n, 0x3C00, np.uint16)  # float16 ones: as float pairs, normal numbers
        out16 = np.empty(n, np.uint16)
        isa = kernel.active_isa()
        rows["probe (28 B)"] = lambda: _bench.bandwidth_probe("apply", isa, False, m, v, g32, d)
        if hasattr(_bench, "bandwidth_probe_master"):
            rows["probe master"] = lambda: _bench.bandwidth_probe_master(isa, m, v, ones16, p, out16)
    return rows


def spread(values):
    return f"{statistics.median(values):.3f} [{min(values):.2f}-{max(values):.2f}]"


def measure(n, threads, repeat):
    """Seconds per row for every repetition, rows run one after another within a repetition."""
    kernel.set_num_threads(threads)
    if _bench is not None:
        _bench.set_num_threads(threads)  # the probes run on the lab module's own pool
    rows = runners(n)
    times = {name: [] for name in rows}
    for fn in rows.values():
        fn()  # warm: page faults, pool start
    for _ in range(repeat):
        for name, fn in rows.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def main(argv=None):
    args = parse_args(argv)
    print(f"level: {kernel.active_isa()}; {args.repeat} repetitions; Melem/s is the median rate; ratios are "
          "medians of paired per-repetition ratios [min-max]")
    print(f"{'size':>6} {'thr':>3} {'row':<21} {'Melem/s':>8} {'GB/s':>6}  {'of limit':<20} {'vs f32 apply':<20} "
          f"{'vs unchecked':<20}")
    limit_of = {"float32 apply": "probe (28 B)", "float16 master": "probe master", "bfloat16 master": "probe master",
                "float16 master+check": "probe master", "bfloat16 master+check": "probe master"}
    unchecked_of = {"float16 master+check": "float16 master", "bfloat16 master+check": "bfloat16 master"}
    csv = ["size,threads,row,melem_s,of_limit_median,of_limit_min,of_limit_max,vs_apply_median,vs_apply_min,"
           "vs_apply_max,vs_unchecked_median,vs_unchecked_min,vs_unchecked_max"]
    for n in args.sizes:
        for threads in args.threads:
            times = measure(n, threads, args.repeat)
            for name, t in times.items():
                rate = n / statistics.median(t)
                base = [a / b for a, b in zip(times["float32 apply"], t)]
                lim = [a / b for a, b in zip(times[limit_of[name]], t)] if limit_of.get(name) in times else None
                own = [a / b for a, b in zip(times[unchecked_of[name]], t)] if name in unchecked_of else None
                size = f"2^{n.bit_length() - 1}"
                print(f"{size:>6} {threads:>3} {name:<21} {rate / 1e6:8.1f} {rate * 28 / 1e9:6.2f}  "
                      f"{spread(lim) if lim else '':<20} {spread(base) if name in limit_of else '':<20} "
                      f"{spread(own) if own else '':<20}")
                row = [size, threads, name, f"{rate / 1e6:.1f}"]
                for r in (lim, base if name in limit_of else None, own):
                    row += [f"{f(r):.4f}" for f in (statistics.median, min, max)] if r else ["", "", ""]
                csv.append(",".join(str(x) for x in row))
    if args.csv:
        with open(args.csv, "w") as f:
            f.write("\n".join(csv) + "\n")


if __name__ == "__main__":
    main()
