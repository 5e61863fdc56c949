"""Thread scaling plot from a bench_kernel.py CSV and a bench_masters.py CSV (many_core.sh makes both).

    python benchmarks/tuning/plot_scaling.py KERNEL_CSV MASTERS_CSV OUT_PNG [--sizes 24,26] [--title TEXT]

One panel a size: elements per second against threads for our apply pass, the peers, the apply probe
and the two 16-bit passes. The two CSVs come from separate runs, so lines from different files are
not paired samples.
"""
import argparse
import csv
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def kernel_rates(path):
    """{(elements, family): {threads: elements per second}} from bench_kernel's median times."""
    out = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["kind"] != "time":
                continue
            m = re.fullmatch(r"(.+?)(?:/[a-z0-9]+)?/t(\d+)", row["name"])
            if not m:
                continue
            n = int(row["elements"])
            out.setdefault((n, m.group(1)), {})[int(m.group(2))] = n / float(row["median"])
    return out


def master_rates(path):
    out = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            n = 1 << int(row["size"].split("^")[1])
            out.setdefault((n, row["row"]), {})[int(row["threads"])] = float(row["melem_s"]) * 1e6
    return out


STYLE = {
    "ours-apply": ("ours: float32 apply", "C0", "-"),
    "deepspeed": ("DeepSpeed cpu_adam", "C3", "-"),
    "torch-fused": ("torch fused Adam", "C2", "-"),
    "probe-apply": ("probe: apply pattern", "grey", ":"),
    "float16 master": ("ours: float16 master pass", "C1", "--"),
    "bfloat16 master": ("ours: bfloat16 master pass", "C4", "--"),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("kernel_csv")
    p.add_argument("masters_csv")
    p.add_argument("out_png")
    p.add_argument("--sizes", default="24,26")
    p.add_argument("--title", default="")
    a = p.parse_args(argv)
    rates = {**kernel_rates(a.kernel_csv), **master_rates(a.masters_csv)}
    sizes = [1 << int(e) for e in a.sizes.split(",")]
    fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 4), dpi=90, sharey=True)
    for ax, n in zip(axes if len(sizes) > 1 else [axes], sizes):
        for family, (label, colour, dash) in STYLE.items():
            series = rates.get((n, family))
            if series:
                ts = sorted(series)
                ax.plot(ts, [series[t] / 1e9 for t in ts], dash, color=colour, marker="o", ms=3, label=label)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("threads")
        ax.set_title(f"2^{n.bit_length() - 1} elements", fontsize=9)
        ax.grid(True, alpha=0.3)
    (axes[0] if len(sizes) > 1 else axes).set_ylabel("G elements / s (median)")
    (axes[0] if len(sizes) > 1 else axes).legend(fontsize=7)
    fig.suptitle(a.title, fontsize=8)
    fig.tight_layout()
    fig.savefig(a.out_png)
    print(f"wrote {a.out_png}")


if __name__ == "__main__":
    main()
