"""The thread pool's grain on the CPU at hand.

A pass over n elements runs on one thread below 2 * grain (up to two threads) or grain / 2 (more),
else on min(threads, n / (grain / 8)) threads (csrc/threadpool.cpp). Every repetition runs the float32
apply pass once per grain (and DeepSpeed's cpu_adam, where importable, on the same buffers), in a random
order; the table gives each grain's median time as a ratio to the current grain's (< 1: faster) and
DeepSpeed's time over the current grain's. Needs the lab build (MINDSPORE_OFFLOAD_BENCH=1):

    python benchmarks/tuning/bench_grain.py --sizes 16,18,20,22 --threads 16 --grains 14,15,16,17
"""
import argparse
import os
import statistics
import sys

import numpy as np

# The buffers, the timing loop and the DeepSpeed peer are bench_kernel.py's, one folder up.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench_kernel import Buffers, Impl, Peers, lr_powers  # noqa: E402
from mindspore_offload import _bench  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="16,18,20,22", help="comma-separated powers of two")
    p.add_argument("--threads", default="2", help="comma-separated thread counts")
    p.add_argument("--grains", default="14,15,16,17", help="comma-separated powers of two")
    p.add_argument("--spins", default="",
                   help="comma-separated pool spin bounds in us (MINDSPORE_OFFLOAD_SPIN_US), each with every grain; "
                        "default: the current one only")
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--no-peers", action="store_true")
    a = p.parse_args(argv)
    a.sizes = [1 << int(e) for e in a.sizes.split(",")]
    a.threads = [int(t) for t in a.threads.split(",")]
    a.grains = [1 << int(e) for e in a.grains.split(",")]
    a.spins = [int(x) for x in a.spins.split(",") if x]
    return a


def main(argv=None):
    args = parse_args(argv)
    saved = _bench.get_tuning()
    current = saved["grain"]
    spin = _bench.thresholds()["spin_us"]
    spins = args.spins or [spin]
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
                impls = []
                for g in grains:
                    for s in spins:
                        def ours(g=g, s=s):
                            _bench.set_tuning(grain=g)
                            _bench.override_thresholds(None, None, s)
                            _bench.adam_apply(b.p, b.m, b.v, b.g, *lr_powers(), False)
                        label = f"grain 2^{g.bit_length() - 1}" + (f" spin {s}" if s != spin else "")
                        impls.append(Impl(label, ours, threads, _bench.set_num_threads))
                if peers.ds is not None:
                    impls += [i for i in peers.impls(b, threads) if i.name.startswith("deepspeed")]
                for impl in impls:
                    impl.calibrate(0.01)
                order = np.random.default_rng(n + threads)
                for _ in range(args.repeat):
                    for i in order.permutation(len(impls)):
                        impls[i].sample()
                samples = {impl.name.split("/")[0]: impl.samples for impl in impls}
                base = samples[f"grain 2^{current.bit_length() - 1}"]
                cells = []
                for name, s in samples.items():
                    r = [x / y for x, y in zip(s, base)]
                    cells.append(f"{name} {statistics.median(r):.3f} [{min(r):.2f}-{max(r):.2f}]")
                print(f"2^{n.bit_length() - 1:<3} t{threads:<3} {statistics.median(base) * 1e6:9.1f} us | " + " | ".join(cells),
                      flush=True)
    finally:
        _bench.set_tuning(**saved)
        _bench.override_thresholds(None, None, spin)


if __name__ == "__main__":
    main()
