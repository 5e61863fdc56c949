"""Throughput of the host Adam pass against the machine's memory-bandwidth limit.

For each size it times, interleaved within every repetition (the machines we run on are shared and
noisy, so every implementation sees the same noise), and reports medians in elements per second:

    ours/<isa>/t<threads>   mindspore_offload's kernel at each instruction-set level and thread count
    ours-apply/<isa>/t<n>   adam_apply (param += delta in the same pass, no delta array: 28 bytes an
                            element instead of 24), at the default level only
    ms-adam-no-update       MindSpore's ops.AdamNoUpdateParam on Parameters, PyNative (skipped if absent)
    numpy                   the same formula in NumPy, in place, with one scratch array
    limit                   the bandwidth probe (same access pattern, almost no arithmetic): the best of
                            streaming / plain delta stores and 1 / 2 threads, measured in this run.
                            It moves the delta pass's 24 bytes an element; there is no probe for
                            apply's 28 (read param, g, m, v; write param, m, v), so apply's "of limit"
                            is against an estimate, limit * 24 / 28, and only a guide

Our kernel and the probe are timed through the compiled entry points (_C), so the figures are the
pass itself plus one pybind11 call; kernel.adam_delta adds its Python argument checks on top.

    python benchmarks/bench_kernel.py                # 2^10 .. 2^26, every second power, ~1 minute quiet
    python benchmarks/bench_kernel.py --quick        # 2^14, 2^20, 2^24, fewer repetitions
    python benchmarks/bench_kernel.py --sizes 20,24,26 --repeat 9 --out-dir /tmp/bench
"""
import argparse
import csv
import os
import statistics
import sys
import time

import numpy as np

from mindspore_offload import _C, kernel

HYPER = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, beta1_power=0.9 ** 10, beta2_power=0.999 ** 10)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=None,
                   help="comma-separated powers of two, e.g. 10,20,24 for 2^10, 2^20, 2^24 "
                        "(default: 10,12,...,26)")
    p.add_argument("--repeat", type=int, default=None, help="timed repetitions per size (default 9, quick 3)")
    p.add_argument("--out-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
                   help="where kernel_throughput.csv and .png go (default benchmarks/results)")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts for our kernel (default 1,2)")
    p.add_argument("--min-sample", type=float, default=None,
                   help="seconds each timed sample lasts at least; small sizes loop the call (default 0.02)")
    p.add_argument("--no-mindspore", action="store_true", help="skip ops.AdamNoUpdateParam")
    p.add_argument("--no-apply", action="store_true", help="skip adam_apply (ours-apply rows)")
    p.add_argument("--quick", action="store_true", help="three sizes, three repetitions: a smoke run")
    a = p.parse_args(argv)
    if a.sizes is None:
        a.sizes = "14,20,24" if a.quick else ",".join(str(e) for e in range(10, 27, 2))
    a.sizes = [1 << int(e) for e in a.sizes.split(",")]
    a.threads = [int(t) for t in a.threads.split(",")]
    if a.repeat is None:
        a.repeat = 3 if a.quick else 9
    if a.min_sample is None:
        a.min_sample = 0.005 if a.quick else 0.02
    return a


def state(n, rng):
    """m, v, grad, delta as the kernel sees them mid-training: touched, so no page faults are timed."""
    g = (rng.standard_normal(n, dtype=np.float32) * 1e-2).astype(np.float32)
    m = g * np.float32(0.1)
    v = g * g * np.float32(0.001)
    return m, v, g, np.empty_like(g)


class Timed:
    """One implementation: a callable running one pass, and how many passes make one sample."""

    def __init__(self, name, fn, sync=None):
        self.name, self.fn, self.sync, self.inner, self.samples = name, fn, sync or (lambda: None), 1, []

    def calibrate(self, min_sample):
        for _ in range(2):  # warm-up: first touches, thread start, compilation
            self.fn()
        self.sync()
        t = time.perf_counter()
        self.fn()
        self.sync()
        once = max(time.perf_counter() - t, 1e-7)
        self.inner = max(1, int(min_sample / once))

    def sample(self):
        fn, inner = self.fn, self.inner
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        self.sync()
        self.samples.append((time.perf_counter() - t) / inner)


def ours(kernel_state, apply_state, probe_state, isas, apply_isa, threads):
    """Our kernel at every level for one thread count, adam_apply at apply_isa, and the probe."""
    m, v, g, d = kernel_state
    h = HYPER
    out = []
    for isa in isas:
        def run(isa=isa):
            _C.adam_delta(m, v, g, d, h["lr"], h["beta1"], h["beta2"], h["eps"], h["beta1_power"],
                          h["beta2_power"], False, False)
        out.append((f"ours/{isa}/t{threads}", isa, run))
    if apply_isa:
        am, av, ag, ap = apply_state

        def run_apply():
            _C.adam_apply(ap, am, av, ag, h["lr"], h["beta1"], h["beta2"], h["eps"], h["beta1_power"],
                          h["beta2_power"], False, False)
        out.append((f"ours-apply/{apply_isa}/t{threads}", apply_isa, run_apply))
    pm, pv, pg, pd = probe_state
    for stream in (False, True):
        out.append((f"probe/{'stream' if stream else 'plain'}/t{threads}", None,
                    lambda stream=stream: _C.bandwidth_probe(pm, pv, pg, pd, stream)))
    return out


def numpy_adam(n, rng):
    m, v, g, d = state(n, rng)
    tmp = np.empty_like(g)
    lr_t = np.float32(HYPER["lr"] * np.sqrt(1 - HYPER["beta2_power"]) / (1 - HYPER["beta1_power"]))
    b1, b2, eps = np.float32(HYPER["beta1"]), np.float32(HYPER["beta2"]), np.float32(HYPER["eps"])

    def run():
        np.multiply(g, 1 - b1, out=tmp)
        np.multiply(m, b1, out=m)
        np.add(m, tmp, out=m)
        np.multiply(g, g, out=tmp)
        np.multiply(tmp, 1 - b2, out=tmp)
        np.multiply(v, b2, out=v)
        np.add(v, tmp, out=v)
        np.sqrt(v, out=tmp)
        np.add(tmp, eps, out=tmp)
        np.multiply(m, -lr_t, out=d)
        np.divide(d, tmp, out=d)

    return run


def mindspore_adam(n, rng):
    """ops.AdamNoUpdateParam on Parameters in PyNative; None when MindSpore or the op is missing."""
    try:
        import mindspore as ms
        from mindspore import Parameter, Tensor, ops

        op = ops.AdamNoUpdateParam()
    except Exception as e:  # ImportError, or AttributeError once MindSpore drops the op
        print(f"# ops.AdamNoUpdateParam unavailable ({type(e).__name__}: {e}); skipped", file=sys.stderr)
        return None
    ms.set_context(mode=ms.PYNATIVE_MODE)
    m, v, g, _ = state(n, rng)
    m, v, g = Parameter(Tensor(m), name="m"), Parameter(Tensor(v), name="v"), Tensor(g)
    f = lambda x: Tensor(np.float32(x))  # noqa: E731
    h = HYPER
    args = (f(h["beta1_power"]), f(h["beta2_power"]), f(h["lr"]), f(h["beta1"]), f(h["beta2"]), f(h["eps"]), g)
    last = [None]

    def run():
        last[0] = op(m, v, *args)

    def sync():  # PyNative on CPU runs ops asynchronously; reading the last result waits for all
        last[0].asnumpy()

    return run, sync


def measure(n, args, rng, isas, ms_ok):
    kernel_state, probe_state = state(n, rng), state(n, rng)
    apply_state = None
    if args.apply_isa:  # m, v, grad, and a parameter of ordinary values (state's last array is empty)
        am, av, ag, _ = state(n, rng)
        apply_state = (am, av, ag, np.full_like(ag, 0.05))
    groups = {t: ours(kernel_state, apply_state, probe_state, isas, args.apply_isa, t) for t in args.threads}
    impls = {}
    for t, entries in groups.items():
        kernel.set_num_threads(t)
        impls[t] = []
        for name, isa, fn in entries:
            if isa:
                kernel.set_isa(isa)
            timed = Timed(name, fn)
            timed.calibrate(args.min_sample)
            impls[t].append((isa, timed))
    others = [Timed("numpy", numpy_adam(n, rng))]
    if ms_ok:
        made = mindspore_adam(n, rng)
        if made:
            others.append(Timed("ms-adam-no-update", *made))
    for o in others:
        o.calibrate(args.min_sample)
    for _ in range(args.repeat):  # one repetition: every implementation once, in turn
        for t in args.threads:
            kernel.set_num_threads(t)
            for isa, timed in impls[t]:
                if isa:
                    kernel.set_isa(isa)
                timed.sample()
        for o in others:
            o.sample()
    rows = [timed for t in args.threads for _, timed in impls[t]] + others
    return {r.name: statistics.median(r.samples) for r in rows}, {r.name: r.samples for r in rows}


def paired(samples, name, reference):
    """Median over repetitions of reference time / name's time, each pair measured moments apart.

    reference is a name or "limit" (the fastest probe of that repetition). On a shared machine this
    is steadier than the ratio of two medians: a slow spell hits both sides of a pair.
    """
    probes = [k for k in samples if k.startswith("probe/")]
    reps = len(samples[name])
    if reference == "limit":
        ref = [min(samples[k][r] for k in probes) for r in range(reps)]
    else:
        ref = samples[reference]
    return statistics.median(ref[r] / samples[name][r] for r in range(reps))


def plot(results, sizes, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=90)
    names = [k for k in results[sizes[0]] if not k.startswith("probe/")]
    for name in names:
        ys = [sizes_n / results[sizes_n][name] / 1e9 for sizes_n in sizes if name in results[sizes_n]]
        style = "-" if name.startswith("ours/") else "--"
        ax.plot(sizes[: len(ys)], ys, style, marker="o", ms=3, label=name)
    limit = [n / min(t for k, t in results[n].items() if k.startswith("probe/")) / 1e9 for n in sizes]
    ax.plot(sizes, limit, "k-", lw=2.5, alpha=0.35, label="limit (bandwidth probe)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("elements per tensor")
    ax.set_ylabel("G elements / s (median)")
    ax.set_title("Host Adam pass: delta 24 bytes/element, apply 28 (limit: 24-byte probe)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    rng = np.random.default_rng(0)
    isas = kernel.available_isas()
    first_isa, first_threads = kernel.active_isa(), kernel.get_num_threads()
    args.apply_isa = None if args.no_apply else first_isa
    ms_ok = not args.no_mindspore
    results = {}
    csv_path = os.path.join(args.out_dir, "kernel_throughput.csv")
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["elements", "implementation", "median_s", "g_elements_per_s", "limit_g_elements_per_s",
                    "fraction_of_limit", "paired_fraction_of_limit", "paired_speedup_over_ms", "samples"])
        for n in args.sizes:
            med, samples = measure(n, args, rng, isas, ms_ok)
            results[n] = med
            limit = n / min(t for k, t in med.items() if k.startswith("probe/"))
            ms_name = "ms-adam-no-update" if "ms-adam-no-update" in med else None
            for name, t in med.items():
                w.writerow([n, name, f"{t:.9g}", f"{n / t / 1e9:.4f}", f"{limit / 1e9:.4f}",
                            f"{n / t / limit:.3f}", f"{paired(samples, name, 'limit'):.3f}",
                            f"{paired(samples, name, ms_name):.3f}" if ms_name else "", len(samples[name])])
            f.flush()
            print_size(n, med, samples, limit, first_isa, first_threads)
    kernel.set_isa(first_isa)
    kernel.set_num_threads(first_threads)
    png = os.path.join(args.out_dir, "kernel_throughput.png")
    plot(results, args.sizes, png)
    print(f"\nwrote {csv_path}\nwrote {png}")


def print_size(n, med, samples, limit, isa, threads):
    default = f"ours/{isa}/t{threads}"
    ms_name = "ms-adam-no-update" if "ms-adam-no-update" in med else None
    head = f"n = 2^{n.bit_length() - 1} = {n}: limit {limit / 1e9:.2f} G el/s (median of the best probe)"
    if default in med and ms_name:
        head += (f"; default {default} is {med[ms_name] / med[default]:.2f}x ms-adam-no-update "
                 f"(paired {paired(samples, default, ms_name):.2f}x)")
    print(head, flush=True)
    print(f"  {'implementation':22s} {'G el/s':>8s} {'of limit':>9s} {'paired':>7s} {'median':>13s}")
    for name, t in med.items():
        print(f"  {name:22s} {n / t / 1e9:8.3f} {n / t / limit:9.3f} {paired(samples, name, 'limit'):7.3f} "
              f"{t * 1e6:10.1f} us", flush=True)
    for name in (k for k in med if k.startswith("ours-apply/")):
        # No probe moves apply's 28 bytes; scale the 24-byte limit by bytes as a guide.
        print(f"  {name}: {n / med[name] / (limit * 24 / 28):.3f} of the estimated apply limit "
              f"(limit * 24/28 = {limit * 24 / 28 / 1e9:.2f} G el/s; paired "
              f"{paired(samples, name, 'limit') * 28 / 24:.3f})", flush=True)


if __name__ == "__main__":
    main()
