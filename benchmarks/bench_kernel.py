"""Throughput of the host Adam pass, side by side with its peers and the machine's bandwidth limit.

Every implementation runs once per repetition, in a fresh random order each time (the machines we run
on are shared and noisy: every implementation sees the same spells), on the same buffers, which sit on
2 MiB pages (madvise(MADV_HUGEPAGE) on 2 MiB-aligned memory). Figures are medians over repetitions;
ratios are *paired*: the median over repetitions of (time of A / time of B) measured moments apart,
with the spread (25th-75th percentile and min-max) beside it.

    ours-delta/<isa>/t<n>   _C.adam_delta: read g, m, v; write m, v, delta (24 bytes an element)
    ours-apply/<isa>/t<n>   _C.adam_apply: read p, g, m, v; write p, m, v (28 bytes), param += delta
    ours-adamw/<isa>/t<n>   _C.adamw_step in place: AdamWeightDecayOffload's host pass on the CPU backend
                            (the same 28 bytes; nn.AdamWeightDecay's rule, decay 0.01), rounding "double"
    ours-adamw-f32/<isa>/t<n>  the same with rounding "float32" (csrc/adamw.h)
    deepspeed/t<n>          DeepSpeed's cpu_adam op (adam_update: the same 28-byte in-place pass; its
                            own bias-correction and eps placement, so other numbers, same work)
    deepspeed-adamw/t<n>    the same op created with adamw_mode=True, weight decay 0.01 (28 bytes)
    torch-fused/t<n>        torch.optim.Adam(fused=True) on CPU tensors over the same buffers (28 bytes)
    numpy, ms-adam-no-update  the formula in NumPy; MindSpore's ops.AdamNoUpdateParam (PyNative)
    probe-delta-{plain,stream}/<isa>/t<n>, probe-apply/<isa>/t<n>
                            the lab build's bandwidth probe: the delta and apply access patterns with
                            almost no arithmetic, the speed limit each pass is compared with

Peers that are not installed are skipped with a note (pip install torch deepspeed; DeepSpeed compiles
its op on first use, with -march=native: that is DeepSpeed's choice, ours is built for the x86-64
baseline with run-time dispatch). Our kernel is timed through _C, the build users get; the probe comes
from mindspore_offload._bench (MINDSPORE_OFFLOAD_BENCH=1 python setup.py build_ext --inplace, or make bench).

    python benchmarks/bench_kernel.py                     # the figures in docs/performance.md (~3-5 min)
    python benchmarks/bench_kernel.py --sizes 20,24,26 --isas default --no-numpy --no-mindspore \
        --only ours-,deepspeed,torch,probe-apply --repeat 31           # against the peers, ~3 min
    python benchmarks/bench_kernel.py --quick             # smoke run
"""
import argparse
import csv
import mmap
import os
import platform
import statistics
import sys
import time

import numpy as np

from mindspore_offload import _C, kernel

HYPER = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, step=10)
ADAMW_DECAY = 0.01
PAGE = 2 << 20


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=None, help="comma-separated powers of two (default 10,14,16,18,20,22,24,26)")
    p.add_argument("--repeat", type=int, default=None, help="repetitions per size (default 11, quick 3)")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    p.add_argument("--isas", default="all", help="levels for ours-delta: 'all' (default), 'default', or a list")
    p.add_argument("--min-sample", type=float, default=None, help="seconds a sample lasts at least (default 0.02)")
    p.add_argument("--no-numpy", action="store_true")
    p.add_argument("--no-mindspore", action="store_true")
    p.add_argument("--no-peers", action="store_true", help="skip DeepSpeed and torch")
    p.add_argument("--only", default=None,
                   help="comma-separated name prefixes to time, e.g. ours-apply,deepspeed,probe-apply: fewer "
                        "implementations a repetition put each pair closer in time (default: all)")
    p.add_argument("--quick", action="store_true", help="2^14, 2^20, 2^24, three repetitions")
    p.add_argument("--plot-only", metavar="CSV", help="redraw the plot from a kernel_throughput.csv; time nothing")
    p.add_argument("--out-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    a = p.parse_args(argv)
    if a.sizes is None:
        a.sizes = "14,20,24" if a.quick else "10,14,16,18,20,22,24,26"
    a.sizes = [1 << int(e) for e in a.sizes.split(",")]
    a.threads = [int(t) for t in a.threads.split(",")]
    a.repeat = a.repeat or (3 if a.quick else 11)
    a.min_sample = a.min_sample or (0.005 if a.quick else 0.02)
    return a


# ---------------------------------------------------------------- the machine, printed with every result

def read(path, default=""):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def machine():
    model = next((line.split(":", 1)[1].strip() for line in read("/proc/cpuinfo").splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown CPU")
    caches = []
    base = "/sys/devices/system/cpu/cpu0/cache"
    for index in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        if not index.startswith("index"):
            continue
        d = os.path.join(base, index)
        if read(f"{d}/type") != "Instruction":
            caches.append(f"L{read(f'{d}/level')} {read(f'{d}/size')} (cpus {read(f'{d}/shared_cpu_list')})")
    info = {
        "cpu": model,
        "caches": ", ".join(caches) or "unknown",
        "cpus": f"{len(os.sched_getaffinity(0))} usable of {os.cpu_count()}",
        "isa": f"{kernel.active_isa()} (available {', '.join(kernel.available_isas())})",
        "hugepages": read("/sys/kernel/mm/transparent_hugepage/enabled", "unknown"),
    }
    lab = lab_module()
    if lab is not None and hasattr(lab, "get_tuning"):
        info["thresholds"] = ", ".join(f"{k} {'off' if v >= 1 << 62 else v}" for k, v in lab.get_tuning().items())
    return info


def machine_line(info):
    return f"# {info['cpu']} | {info['caches']} | {info['cpus']} CPUs | isa {info['isa']}"


def lab_module():
    try:
        from mindspore_offload import _bench
        return _bench
    except ImportError:
        return None


# ---------------------------------------------------------------- buffers on 2 MiB pages

def huge_array(n):
    """n float32 on memory aligned to 2 MiB and advised to use huge pages, touched once."""
    nbytes = max(4 * n, 4)
    # Private, not mmap's default shared mapping: shared anonymous memory is shmem, which transparent
    # huge pages skip unless shmem_enabled allows them.
    region = mmap.mmap(-1, nbytes + PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    whole = np.frombuffer(region, dtype=np.uint8)
    offset = (-whole.ctypes.data) % PAGE
    if hasattr(mmap, "MADV_HUGEPAGE"):
        region.madvise(mmap.MADV_HUGEPAGE, offset, (nbytes + PAGE - 1) // PAGE * PAGE)
    a = whole[offset: offset + 4 * n].view(np.float32)
    a[:] = 0
    return a


def huge_page_bytes():
    for line in read("/proc/self/smaps_rollup").splitlines():
        if line.startswith("AnonHugePages:"):
            return int(line.split()[1]) * 1024
    return None


class Buffers:
    """One set of arrays shared by every implementation: g, and p, m, v (Adam), d (delta), pm, pv (probe)."""

    def __init__(self, n, rng):
        self.g, self.p, self.m, self.v, self.d, self.pm, self.pv = (huge_array(n) for _ in range(7))
        self.g[:] = rng.standard_normal(n, dtype=np.float32) * np.float32(1e-2)
        self.m[:] = self.g * np.float32(0.1)
        self.v[:] = self.g * self.g * np.float32(0.001)
        self.p[:] = 0.05
        self.pm[:], self.pv[:] = self.m, self.v


# ---------------------------------------------------------------- implementations

class Impl:
    """One implementation at one thread count: set_threads() before its samples, run() one pass."""

    def __init__(self, name, run, threads=None, set_threads=None, sync=None):
        self.name, self.run, self.threads = name, run, threads
        self.set_threads = set_threads or (lambda t: None)
        self.sync = sync or (lambda: None)
        self.inner, self.samples = 1, []

    def calibrate(self, min_sample):
        self.set_threads(self.threads)
        for _ in range(2):  # first touches, thread start, compilation
            self.run()
        self.sync()
        t = time.perf_counter()
        self.run()
        self.sync()
        self.inner = max(1, int(min_sample / max(time.perf_counter() - t, 1e-7)))

    def sample(self):
        self.set_threads(self.threads)
        run, inner = self.run, self.inner
        t = time.perf_counter()
        for _ in range(inner):
            run()
        self.sync()
        self.samples.append((time.perf_counter() - t) / inner)


def lr_powers():
    h = HYPER
    return h["lr"], h["beta1"], h["beta2"], h["eps"], h["beta1"] ** h["step"], h["beta2"] ** h["step"]


def ours(b, isas, threads):
    def set_threads(t):
        kernel.set_num_threads(t)

    out = []
    for isa in isas:
        def delta(isa=isa):
            _C.set_isa(isa)
            _C.adam_delta(b.m, b.v, b.g, b.d, *lr_powers(), False, False)
        out.append(Impl(f"ours-delta/{isa}/t{threads}", delta, threads, set_threads))
    isa = kernel.active_isa()

    def apply():
        _C.set_isa(isa)
        _C.adam_apply(b.p, b.m, b.v, b.g, *lr_powers(), False, False)
    out.append(Impl(f"ours-apply/{isa}/t{threads}", apply, threads, set_threads))

    for suffix, float32 in (("", False), ("-f32", True)):
        def adamw(float32=float32):
            _C.set_isa(isa)
            _C.adamw_step(b.p, b.m, b.v, b.g, b.p, HYPER["lr"], HYPER["beta1"], HYPER["beta2"], HYPER["eps"],
                          ADAMW_DECAY, False, float32)
        out.append(Impl(f"ours-adamw{suffix}/{isa}/t{threads}", adamw, threads, set_threads))
    return out


def probes(b, lab, threads):
    isa = kernel.active_isa()
    run = lab.bandwidth_probe
    return [
        Impl(f"probe-delta-plain/{isa}/t{threads}", lambda: run("delta", isa, False, b.pm, b.pv, b.g, b.d),
             threads, lab.set_num_threads),
        Impl(f"probe-delta-stream/{isa}/t{threads}", lambda: run("delta", isa, True, b.pm, b.pv, b.g, b.d),
             threads, lab.set_num_threads),
        Impl(f"probe-apply/{isa}/t{threads}", lambda: run("apply", isa, False, b.pm, b.pv, b.g, b.p),
             threads, lab.set_num_threads),
    ]


class Peers:
    """DeepSpeed's cpu_adam and torch's fused CPU Adam, loaded once; notes say why one is missing."""

    def __init__(self, enabled):
        self.torch = self.ds = None
        self.notes = []
        if not enabled:
            self.notes.append("DeepSpeed and torch peers skipped (--no-peers)")
            return
        try:
            import torch
            self.torch = torch
        except ImportError as e:
            self.notes.append(f"torch not installed ({e}): torch-fused and deepspeed skipped")
            return
        try:
            import logging

            logging.getLogger("DeepSpeed").setLevel(logging.ERROR)
            from deepspeed.ops.op_builder import CPUAdamBuilder

            builder = CPUAdamBuilder()
            self.ds = builder.load(verbose=False)
            self.ds_flags = " ".join(f for f in builder.cxx_args() if f.startswith(("-march", "-D__AVX", "-O")))
            self.ds.create_adam(0, HYPER["lr"], HYPER["beta1"], HYPER["beta2"], HYPER["eps"], 0.0, False, False)
            self.ds.create_adam(1, HYPER["lr"], HYPER["beta1"], HYPER["beta2"], HYPER["eps"], ADAMW_DECAY, True,
                                False)
        except Exception as e:  # not installed, or its op failed to compile
            self.ds = None
            self.notes.append(f"DeepSpeed cpu_adam unavailable ({type(e).__name__}: {str(e)[:120]}): skipped")

    def impls(self, b, threads):
        out = []
        if self.ds is not None:
            t = self.torch
            p, g, m, v = (t.from_numpy(x) for x in (b.p, b.g, b.m, b.v))
            h = HYPER

            def ds_step():
                self.ds.adam_update(0, h["step"], h["lr"], h["beta1"], h["beta2"], h["eps"], 0.0, True, p, g, m, v)

            # DeepSpeed's loop is an OpenMP loop; its op resolves OpenMP against the libgomp torch loaded,
            # so torch.set_num_threads (omp_set_num_threads underneath) sets its thread count.
            out.append(Impl(f"deepspeed/t{threads}", ds_step, threads, t.set_num_threads))

            def ds_adamw_step():
                self.ds.adam_update(1, h["step"], h["lr"], h["beta1"], h["beta2"], h["eps"], ADAMW_DECAY, True, p, g,
                                    m, v)

            out.append(Impl(f"deepspeed-adamw/t{threads}", ds_adamw_step, threads, t.set_num_threads))
        if self.torch is not None:
            out.append(self.torch_fused(b, threads))
        return out

    def torch_fused(self, b, threads):
        t = self.torch
        p = t.from_numpy(b.p)
        p.grad = t.from_numpy(b.g)
        h = HYPER
        opt = t.optim.Adam([p], lr=h["lr"], betas=(h["beta1"], h["beta2"]), eps=h["eps"], fused=True)
        # Its state on our buffers (as after step 10), so it moves the same bytes as the others.
        opt.state[p] = {"step": t.tensor(float(h["step"])), "exp_avg": t.from_numpy(b.m),
                        "exp_avg_sq": t.from_numpy(b.v)}
        return Impl(f"torch-fused/t{threads}", opt.step, threads, t.set_num_threads)


def numpy_adam(b):
    tmp = np.empty_like(b.g)
    lr, b1, b2, eps, p1, p2 = (np.float32(x) for x in lr_powers())
    lr_t = np.float32(lr * np.sqrt(1 - p2) / (1 - p1))
    m, v, g, d = b.m, b.v, b.g, b.d

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

    return Impl("numpy", run)


def mindspore_adam(b, notes):
    try:
        import mindspore as ms
        from mindspore import Parameter, Tensor, ops

        op = ops.AdamNoUpdateParam()
    except Exception as e:  # not installed, or the op is gone
        notes.append(f"ops.AdamNoUpdateParam unavailable ({type(e).__name__}: {e}): skipped")
        return None
    ms.set_context(mode=ms.PYNATIVE_MODE)
    m, v, g = Parameter(Tensor(b.m.copy()), name="m"), Parameter(Tensor(b.v.copy()), name="v"), Tensor(b.g)
    f = lambda x: Tensor(np.float32(x))  # noqa: E731
    lr, b1, b2, eps, p1, p2 = lr_powers()
    args = (f(p1), f(p2), f(lr), f(b1), f(b2), f(eps), g)
    last = [None]

    def run():
        last[0] = op(m, v, *args)

    return Impl("ms-adam-no-update", run, sync=lambda: last[0].asnumpy())


# ---------------------------------------------------------------- measuring and reporting

def measure(n, args, rng, isas, lab, peers, notes):
    b = Buffers(n, rng)
    impls = []
    for t in args.threads:
        impls += ours(b, isas, t)
        if lab is not None:
            impls += probes(b, lab, t)
        impls += peers.impls(b, t)
    if not args.no_numpy:
        impls.append(numpy_adam(b))
    if not args.no_mindspore:
        made = mindspore_adam(b, notes)
        if made:
            impls.append(made)
    if args.only:
        impls = [i for i in impls if i.name.startswith(tuple(args.only.split(",")))]
    for impl in impls:
        impl.calibrate(args.min_sample)
    order = np.random.default_rng(n)
    for _ in range(args.repeat):
        for i in order.permutation(len(impls)):
            impls[i].sample()
    kernel.set_isa(isas[0] if args.isas != "all" else kernel.available_isas()[0])
    return {impl.name: impl.samples for impl in impls}, huge_page_bytes()


def spread(values):
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return statistics.median(values), q[0], q[2], min(values), max(values)


def ratio(samples, a, b):
    """Paired time ratios a/b: median, quartiles, min, max (None when either is missing)."""
    if a not in samples or b not in samples:
        return None
    return spread([x / y for x, y in zip(samples[a], samples[b])])


def comparisons(samples, threads):
    """The ratios the targets are about: (label, numerator, denominator), time over time."""
    isa = kernel.active_isa()
    out = []
    for t in threads:
        apply, delta = f"ours-apply/{isa}/t{t}", f"ours-delta/{isa}/t{t}"
        out += [
            (f"apply/deepspeed t{t}", apply, f"deepspeed/t{t}"),
            (f"delta/deepspeed t{t}", delta, f"deepspeed/t{t}"),
            (f"apply/torch-fused t{t}", apply, f"torch-fused/t{t}"),
            (f"probe-apply/apply t{t}", f"probe-apply/{isa}/t{t}", apply),
            (f"adamw/deepspeed-adamw t{t}", f"ours-adamw/{isa}/t{t}", f"deepspeed-adamw/t{t}"),
            (f"probe-apply/adamw t{t}", f"probe-apply/{isa}/t{t}", f"ours-adamw/{isa}/t{t}"),
            (f"adamw-f32/deepspeed-adamw t{t}", f"ours-adamw-f32/{isa}/t{t}", f"deepspeed-adamw/t{t}"),
            (f"probe-apply/adamw-f32 t{t}", f"probe-apply/{isa}/t{t}", f"ours-adamw-f32/{isa}/t{t}"),
            (f"probe-delta-stream/delta t{t}", f"probe-delta-stream/{isa}/t{t}", delta),
            (f"probe-delta-plain/delta t{t}", f"probe-delta-plain/{isa}/t{t}", delta),
        ]
    return out


def report(n, samples, threads, info, hp, w):
    print(f"\nn = 2^{n.bit_length() - 1} = {n}")
    print(machine_line(info) + (f" | {hp >> 20} MiB on huge pages" if hp is not None else ""))
    print(f"  {'implementation':30s} {'G el/s':>8s} {'GB/s':>7s} {'median us':>11s}  (min .. max us)")
    for name, s in samples.items():
        med = statistics.median(s)
        nbytes = 24 if ("delta" in name or name in ("numpy", "ms-adam-no-update")) else 28
        print(f"  {name:30s} {n / med / 1e9:8.3f} {n * nbytes / med / 1e9:7.1f} {med * 1e6:11.1f}  "
              f"({min(s) * 1e6:.1f} .. {max(s) * 1e6:.1f})")
        w.writerow([n, name, "time", f"{med:.9g}", f"{min(s):.9g}", f"{max(s):.9g}", "", "", len(s),
                    info["cpu"], info["caches"], info["isa"], info["cpus"]])
    print("  paired time ratios (median [25%-75%] {min-max}; < 1 means the first is faster):")
    for label, a, b in comparisons(samples, threads):
        r = ratio(samples, a, b)
        if r is None:
            continue
        print(f"    {label:32s} {r[0]:6.3f} [{r[1]:.3f}-{r[2]:.3f}] {{{r[3]:.3f}-{r[4]:.3f}}}")
        w.writerow([n, label, "paired_ratio", f"{r[0]:.4f}", f"{r[3]:.4f}", f"{r[4]:.4f}", f"{r[1]:.4f}",
                    f"{r[2]:.4f}", len(samples[a]), info["cpu"], info["caches"], info["isa"], info["cpus"]])
    sys.stdout.flush()


def plot(medians, sizes, path, info):
    """One colour per implementation, solid for one thread and dashed for two or more; probes grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=90)
    names = list(medians[sizes[0]])
    families = sorted({n.rsplit("/t", 1)[0] for n in names if not n.startswith("probe-")})
    palette = [c for i, c in enumerate(plt.cm.tab10.colors) if i != 7] + list(plt.cm.Dark2.colors)  # no grey
    colours = dict(zip(families, palette))
    for name in names:
        xs = [n for n in sizes if name in medians[n]]
        ys = [n / medians[n][name] / 1e9 for n in xs]
        family, _, threads = name.rpartition("/t")
        dashed = threads.isdigit() and int(threads) > 1
        if name.startswith("probe-"):
            marker = {"probe-apply": "^", "probe-delta-plain": "s", "probe-delta-stream": "v"}[name.split("/")[0]]
            ax.plot(xs, ys, ":", color="grey", marker=marker, ms=4, alpha=0.7, label=name)
        else:
            ax.plot(xs, ys, "--" if dashed else "-", color=colours[family if threads.isdigit() else name],
                    marker="o", ms=3, label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("elements per tensor")
    ax.set_ylabel("G elements / s (median)")
    ax.set_title(f"Host Adam pass on {info['cpu']} ({info['cpus']} CPUs)\n{info['caches']}", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6, ncol=3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def replot(csv_path, out_dir):
    medians, info = {}, {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            if row["kind"] == "time":
                medians.setdefault(int(row["elements"]), {})[row["name"]] = float(row["median"])
                info = {"cpu": row["cpu"], "caches": row["caches"], "cpus": row.get("cpus", "?")}
    png = os.path.join(out_dir, "kernel_throughput.png")
    plot(medians, sorted(medians), png, info)
    print(f"wrote {png}")


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    if args.plot_only:
        return replot(args.plot_only, args.out_dir)
    first_isa, first_threads = kernel.active_isa(), kernel.get_num_threads()
    isas = {"all": kernel.available_isas(), "default": [first_isa]}.get(args.isas)
    isas = isas or args.isas.split(",")
    lab = lab_module()
    notes = [] if lab is not None else ["mindspore_offload._bench not built (make bench builds it): no probes"]
    peers = Peers(not args.no_peers)
    notes += peers.notes
    info = machine()
    print(machine_line(info))
    for k in ("hugepages", "thresholds"):
        if k in info:
            print(f"# {k}: {info[k]}")
    print(f"# python {platform.python_version()}, numpy {np.__version__}"
          + (f", torch {peers.torch.__version__}" if peers.torch else "")
          + (f", deepspeed cpu_adam built with {peers.ds_flags}" if peers.ds else ""))
    print(f"# {args.repeat} repetitions, random order each, samples >= {args.min_sample}s")
    for note in notes:
        print(f"# note: {note}")
    rng = np.random.default_rng(0)
    medians = {}
    csv_path = os.path.join(args.out_dir, "kernel_throughput.csv")
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["elements", "name", "kind", "median", "min", "max", "q25", "q75", "repetitions",
                    "cpu", "caches", "isa", "cpus"])
        for n in args.sizes:
            samples, hp = measure(n, args, rng, isas, lab, peers, notes)
            medians[n] = {k: statistics.median(s) for k, s in samples.items()}
            report(n, samples, args.threads, info, hp, w)
            f.flush()
    kernel.set_isa(first_isa)
    kernel.set_num_threads(first_threads)
    png = os.path.join(args.out_dir, "kernel_throughput.png")
    plot(medians, args.sizes, png, info)
    print(f"\nwrote {csv_path}\nwrote {png}")


if __name__ == "__main__":
    main()
