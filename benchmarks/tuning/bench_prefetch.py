"""Software prefetch on or off: the float32 apply pass with each setting, paired and interleaved.

tuning.cpp turns prefetching on only on Intel CPUs, from L2/4 elements a thread's chunk. This checks
that choice on the CPU at hand: every repetition runs the pass once with prefetching from the size the
rule gives (or from 0 where the rule gives "never") and once with it off, in alternating order, and
reports the median of the paired time ratios on/off (< 1: prefetching pays) with its spread.

Needs the lab build (mindspore_offload._bench, MINDSPORE_OFFLOAD_BENCH=1), not MindSpore:

    python benchmarks/tuning/bench_prefetch.py --sizes 22,24,26 --threads 1,4,16 --repeat 9
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

# The hyper-parameters are bench_kernel.py's, one folder up.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench_kernel import lr_powers  # noqa: E402
from mindspore_offload import _bench  # noqa: E402

NEVER = (1 << 64) - 1


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="22,24,26", help="comma-separated powers of two (default 22,24,26)")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    p.add_argument("--repeat", type=int, default=9, help="pairs per size and thread count (default 9)")
    a = p.parse_args(argv)
    a.sizes = [1 << int(e) for e in a.sizes.split(",")]
    a.threads = [int(t) for t in a.threads.split(",")]
    return a


def main(argv=None):
    args = parse_args(argv)
    saved = _bench.get_tuning()
    on = saved["prefetch_min"] if saved["prefetch_min"] != NEVER else 0
    print(f"level {_bench.active_isa()}; rule's prefetch_min: "
          f"{'never' if saved['prefetch_min'] == NEVER else saved['prefetch_min']}; 'on' uses {on}")
    print(f"{'size':>6} {'thr':>3}  on/off time ratio: median [min-max] of {args.repeat} pairs")
    rng = np.random.default_rng(0)
    try:
        for n in args.sizes:
            g = (rng.standard_normal(n) * 1e-2).astype(np.float32)
            p, m, v = np.full(n, 0.05, np.float32), g * np.float32(0.1), g * g * np.float32(1e-3)
            for threads in args.threads:
                _bench.set_num_threads(threads)

                def timed(prefetch_min):
                    _bench.set_tuning(prefetch_min=prefetch_min)
                    t0 = time.perf_counter()
                    _bench.adam_apply(p, m, v, g, *lr_powers(), False)
                    return time.perf_counter() - t0

                timed(on), timed(NEVER)  # warm
                ratios = []
                for r in range(args.repeat):
                    if r % 2:
                        off, with_ = timed(NEVER), timed(on)
                    else:
                        with_, off = timed(on), timed(NEVER)
                    ratios.append(with_ / off)
                print(f"2^{n.bit_length() - 1:<4} {threads:>3}  {statistics.median(ratios):.3f} "
                      f"[{min(ratios):.3f}-{max(ratios):.3f}]", flush=True)
    finally:
        _bench.set_tuning(**saved)


if __name__ == "__main__":
    main()
