"""A sha256 of everything the compiled kernel computes, to show that a change to csrc/ keeps the bits.

Run it with the package importable, e.g. from the repository root after an in-place build:

    MINDSPORE_OFFLOAD_BENCH=1 python setup.py build_ext --inplace
    PYTHONPATH=. python tests/support/digest.py

It prints one line per entry point, level and thread count, each the sha256 of the entry's return codes
and of every output and state array after 3 steps over the sizes 1, 7, 8, 9, 33, 4099 and 2^17 + 5 (all
variants of an entry in one digest), run three ways: through mindspore_offload._C with its own size
thresholds, and through the lab build mindspore_offload._bench with a grain of 64 (so even small arrays
are split over the threads), once with plain stores and once with streaming stores and prefetching
everywhere. The entries are the kernel's Python face (adam_delta, adam_apply, adam_master_step) and
every exported custom-op entry point, called through ctypes as MindSpore's CPU backend calls them;
AdamW's (adamw_step, adamw_master_step, AdamWOffload*) in both roundings, and both bucket entries.
An "abi" line hashes the return codes and the written bytes of every entry point given each of its
inputs with another dtype or fewer elements, one input at a time. The last line, "total", hashes them all.

The compiled modules are loaded by path (the package's __init__ is not run, so MindSpore is not imported
and the digest does not depend on the Python side). Needs only NumPy.

Across machines (`make test-aarch64`, tools/test_aarch64.sh): `--json FILE` also writes the digests as JSON,
`--quick` leaves out the 2^17 + 5 size (an emulated CPU runs the rest in minutes), `--levels neon` makes the
digests of the levels named only (the CI run of `make test-aarch64` emulates `neon` alone), and
`--compare A.json B.json` checks that every entry point gives one digest at every level and thread count of
both files (an x86-64 one with avx512/avx2/scalar and an aarch64 one with neon/scalar, say).
"""
import argparse
import ctypes
import json
import sys
import hashlib
import importlib.machinery
import importlib.util
import itertools
import os

import numpy as np

SIZES = [1, 7, 8, 9, 33, 4099, (1 << 17) + 5]
STEPS = 3
THREADS = [1, 3]
RANKS = 3  # the slice entry points: each tensor cut into this many zero-padded slices
HYPER = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8)
DECAY, SCALE = 0.02, 0.25
NEVER = 1 << 40
FLAGS = ["", "Nesterov", "Locked", "NesterovLocked"]
ADAMW_FLAGS = ["", "Locked", "Float32", "Float32Locked"]
ADAMW_DECAY = 0.05
PREPS = {"": (False, False), "Decay": (True, False), "Unscale": (False, True), "DecayUnscale": (True, True)}
HALVES = ["float16", "bfloat16"]


def load(name):
    """mindspore_offload.<name> from the package's folder, without importing the package."""
    spec = importlib.util.find_spec("mindspore_offload")
    if spec is None:
        raise SystemExit("mindspore_offload is not importable: run with PYTHONPATH=<the repository root> "
                         "after an in-place build, or install the package.")
    folder = spec.submodule_search_locations[0]
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(folder, name + suffix)
        if os.path.exists(path):
            loader = importlib.machinery.ExtensionFileLoader("mindspore_offload." + name, path)
            module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
            loader.exec_module(module)
            module.__file__ = path
            return module, ctypes.CDLL(path)
    raise SystemExit(f"mindspore_offload/{name}*.so is not built: run "
                     "MINDSPORE_OFFLOAD_BENCH=1 python setup.py build_ext --inplace first.")


def call(lib, entry, arrays, dtypes=None):
    """An aot entry point as MindSpore calls it: pointers, ranks, shapes and dtype names."""
    fn = getattr(lib, entry)
    fn.restype = ctypes.c_int
    n = len(arrays)
    shapes = [np.array(a.shape, np.int64) for a in arrays]
    names = dtypes or [a.dtype.name for a in arrays]
    return fn(n, (ctypes.c_void_p * n)(*[a.ctypes.data for a in arrays]), (ctypes.c_int * n)(*[a.ndim for a in arrays]),
              (ctypes.POINTER(ctypes.c_int64) * n)(*[s.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)) for s in shapes]),
              (ctypes.c_char_p * n)(*[None if d is None else d.encode() for d in names]), None, None)


def sixteen(x, half):
    """float32 values as 16-bit bits (uint16): float16 by NumPy, bfloat16 rounded to nearest even."""
    if half == "float16":
        with np.errstate(over="ignore"):  # past float16's range: infinity, on purpose
            return x.astype(np.float16).view(np.uint16)
    bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def state(n, half="float16"):
    """Seeded inputs for n elements: masters with values past float16's range and in its denormals,
    moments, and STEPS gradients of varying scale (float32 ones with some denormals, 16-bit ones)."""
    rng = np.random.default_rng(n)
    w = rng.standard_normal(n).astype(np.float32)
    w[::11], w[5::13] = np.float32(7e4), np.float32(3e-6)
    m = (rng.standard_normal(n) * 0.1).astype(np.float32)
    v = (np.abs(rng.standard_normal(n)) * 0.01).astype(np.float32)
    grads, grads16 = [], []
    for t in range(STEPS):
        g = (rng.standard_normal(n) * 10.0 ** (t - 2)).astype(np.float32)
        g[::97] = np.float32(1e-40)
        grads.append(g)
        grads16.append(sixteen(g * 100.0, half))
    return w, m, v, grads, grads16


def scalars(t, wd=None, scale=None):
    s = lambda x, shape=(): np.full(shape, x, np.float32)  # noqa: E731
    out = [s(HYPER["beta1"] ** t, (1,)), s(HYPER["beta2"] ** t, (1,)), s(HYPER["lr"]), s(HYPER["beta1"]),
           s(HYPER["beta2"]), s(HYPER["eps"])]
    return out + ([s(wd), s(scale)] if wd is not None else [])


def written(param, t):
    """The 16-bit parameter with every (t + 2)-th element written since the last step."""
    param = param.copy()
    param[t::t + 2] ^= np.uint16(0x0100)
    return param


# NaN lanes may differ in their bits between the families: with a NaN parameter written by the graph
# (0x7F00 in float16, widened 0x7FE00000) and weight decay, x86 passes the payload on and aarch64 under
# qemu-user gave 0x7FC00000. The digests hash every NaN as one pattern (its lane is still a NaN).
NAN_ABOVE = {"float32": (0x7FFFFFFF, 0x7F800000), "float16": (0x7FFF, 0x7C00), "bfloat16": (0x7FFF, 0x7F80)}


def unsigned_nans(a, half):
    """The bits of `a` (float32, or uint16 holding `half`), every NaN as the quiet NaN with no payload."""
    kind = "float32" if a.dtype == np.float32 else half
    if kind not in NAN_ABOVE:
        return a
    bits = a.view(np.uint32 if kind == "float32" else np.uint16)
    magnitude, inf = NAN_ABOVE[kind]
    quiet = {"float32": 0x7FC00000, "float16": 0x7E00, "bfloat16": 0x7FC0}[kind]
    return np.where((bits & magnitude) > inf, quiet, bits).astype(bits.dtype)


def feed(h, rc, *arrays, half=None):
    h.update(int(rc).to_bytes(4, "little", signed=True))
    for a in arrays:
        h.update(np.ascontiguousarray(unsigned_nans(np.asarray(a), half)).view(np.uint8).tobytes())


def leftover_from(n, start, k):
    return min(max(n - n % 8 - start, 0), k)


# The kernel's Python face, every variant, on `mod` (_C or _bench).
def kernel_float32(mod, name, h):
    for n in SIZES:
        w, m0, v0, grads, _ = state(n)
        for nesterov in (False, True):
            for locking in (False, True):
                m, v, p, out = m0.copy(), v0.copy(), w.copy(), np.empty(n, np.float32)
                for t, g in enumerate(grads, 1):
                    powers = (HYPER["beta1"] ** t, HYPER["beta2"] ** t)
                    if name == "adam_delta":
                        mod.adam_delta(m, v, g, out, *HYPER.values(), *powers, nesterov, locking)
                    else:
                        mod.adam_apply(p, m, v, g, *HYPER.values(), *powers, nesterov, locking)
                    feed(h, 0, m, v, out if name == "adam_delta" else p)


def kernel_master(mod, h):
    for n in SIZES:
        for half in HALVES:
            w0, m0, v0, _, grads = state(n, half)
            for with_param, decay, unscale, nesterov, locking in itertools.product(range(3), *[(False, True)] * 4):
                w, m, v, param = w0.copy(), m0.copy(), v0.copy(), sixteen(w0, half)
                for t, g in enumerate(grads, 1):
                    param = written(param, t)
                    out = param if with_param == 2 else np.empty(n, np.uint16)  # 2: the parameter is out
                    mod.adam_master_step(w, m, v, g, out, param if with_param else None, *HYPER.values(),
                                         HYPER["beta1"] ** t, HYPER["beta2"] ** t, nesterov, half, DECAY, decay,
                                         SCALE, unscale, locking)
                    feed(h, 0, w, m, v, out, half=half)
                    param = out.copy()


def adamw_scalars():
    return [np.full((), x, np.float32) for x in (HYPER["lr"], HYPER["beta1"], HYPER["beta2"], HYPER["eps"],
                                                 ADAMW_DECAY)]


def kernel_adamw(mod, name, h):
    """adamw_step (in place and to `out`) or adamw_master_step, both roundings, locked or not."""
    hyper = (*HYPER.values(), ADAMW_DECAY)
    for n in SIZES:
        for half in (HALVES if name == "adamw_master_step" else [None]):
            w0, m0, v0, grads, grads16 = state(n, half or "float16")
            for float32, locking in itertools.product((False, True), repeat=2):
                w, m, v = w0.copy(), m0.copy(), v0.copy()
                param = sixteen(w0, half) if half else None
                for t, g in enumerate(grads, 1):
                    if half:
                        param = written(param, t)
                        out = np.empty(n, np.uint16)
                        mod.adamw_master_step(w, m, v, grads16[t - 1], out, param, *hyper, half, locking, float32)
                        feed(h, 0, w, m, v, out, half=half)
                        param = out.copy()
                    else:
                        out = np.empty(n, np.float32) if t % 2 else w
                        mod.adamw_step(w, m, v, g, out, *hyper, locking, float32)
                        feed(h, 0, w, m, v, out)
                        w = out.copy()


def entry_adamw(lib, entry, h):
    """An AdamWOffload* entry (custom_op.h): float32 Step/Apply, or the masters' Master/MasterApply/
    MasterSlice with slices cut as the sliced kinds cut them."""
    for n in SIZES:
        for half in (HALVES if "Master" in entry else [None]):
            w0, m0, v0, grads, grads16 = state(n, half or "float16")
            w, m, v = w0.copy(), m0.copy(), v0.copy()
            param = sixteen(w0, half) if half else w
            for t, g in enumerate(grads, 1):
                if not half:
                    last = np.full(1 if "Apply" in entry else n, 7.0, np.float32)
                    feed(h, call(lib, entry, [param, m, v] + adamw_scalars() + [g, last]), param, m, v, last)
                    continue
                param = written(param, t)
                g16 = grads16[t - 1]
                dtypes = [half] + ["float32"] * 8 + [half]
                if "Slice" in entry:
                    k = -(-n // RANKS)
                    out = np.full(k, 7, np.uint16)
                    for rank in range(RANKS):
                        part = slice(rank * k, (rank + 1) * k)
                        cut = [np.ascontiguousarray(np.concatenate([x, np.zeros(RANKS * k - n, x.dtype)])[part])
                               for x in (w, m, v)]
                        lead = np.array([rank * k], np.int64)
                        rc = call(lib, entry, [lead, param] + cut + adamw_scalars() + [g16, out],
                                  ["int64"] + dtypes + [half])
                        feed(h, rc, *cut, out, half=half)
                        for x, c in zip((w, m, v), cut):
                            x[rank * k:(rank + 1) * k] = c[:max(0, min(k, n - rank * k))]
                elif "Apply" in entry:
                    done = np.full(1, 7.0, np.float32)
                    rc = call(lib, entry, [param, w, m, v] + adamw_scalars() + [g16, done], dtypes + ["float32"])
                    feed(h, rc, param, w, m, v, done, half=half)
                else:
                    out = np.full(n, 7, np.uint16)
                    rc = call(lib, entry, [param, w, m, v] + adamw_scalars() + [g16, out], dtypes + [half])
                    feed(h, rc, param, w, m, v, out, half=half)
                    param = out


def entry_bucket(lib, entry, h):
    """A bucket entry (AdamOffloadApplyBucket*, AdamWOffloadApplyBucket*): every size of SIZES in one
    bucket, in place, STEPS steps."""
    states = [state(n) for n in SIZES]
    params = [w.copy() for w, *_ in states]
    m1 = [m.copy() for _, m, *_ in states]
    m2 = [v.copy() for _, _, v, *_ in states]
    adamw = entry.startswith("AdamW")
    decays = [np.full((), (0.0, ADAMW_DECAY)[i % 2], np.float32) for i in range(len(SIZES))]
    for t in range(1, STEPS + 1):
        grads = [grads[t - 1] for *_, grads, _ in states]
        done = np.full(1, 7.0, np.float32)
        if adamw:
            arrays = adamw_scalars()[:4] + params + m1 + m2 + decays + grads + [done]
        else:
            arrays = scalars(t) + params + m1 + m2 + grads + [done]
        feed(h, call(lib, entry, arrays), *params, *m1, *m2, done)


# The custom-op entry points, every exported one, on `lib` (_C's or _bench's library).
def entry_float32(lib, entry, h):
    for n in SIZES:
        w, m, v, grads, _ = state(n)
        m, v, p = m.copy(), v.copy(), w.copy()
        k = -(-n // RANKS)
        for t, g in enumerate(grads, 1):
            if entry.startswith("AdamOffloadSlice"):
                pad = lambda a: np.concatenate([a, np.zeros(RANKS * k - a.size, a.dtype)])  # noqa: E731
                mp, vp, gp = pad(m), pad(v), pad(g)
                for rank in range(RANKS):
                    part = slice(rank * k, (rank + 1) * k)
                    arrays = [np.array([leftover_from(n, rank * k, k)], np.int64), mp[part].copy(),
                              vp[part].copy()] + scalars(t) + [gp[part].copy(), np.full(k, 7.0, np.float32)]
                    feed(h, call(lib, entry, arrays), *arrays[1:3], arrays[-1])
                    mp[part], vp[part] = arrays[1:3]
                m[:], v[:] = mp[:n], vp[:n]
            elif entry.startswith("AdamOffloadApply"):
                done = np.full(1, 7.0, np.float32)
                feed(h, call(lib, entry, [p, m, v] + scalars(t) + [g, done]), p, m, v, done)
            else:
                out = np.full(n, 7.0, np.float32)
                feed(h, call(lib, entry, [m, v] + scalars(t) + [g, out]), m, v, out)


def entry_master(lib, entry, h):
    decay, unscale = PREPS[next(p for p in sorted(PREPS, key=len, reverse=True) if entry.endswith(p))]
    wd, scale = (DECAY if decay else 0.0), (SCALE if unscale else 1.0)
    for n in SIZES:
        for half in HALVES:
            w0, m0, v0, _, grads = state(n, half)
            for bits in ((False, True) if "Slice" in entry else (False,)):
                w, m, v, param = w0.copy(), m0.copy(), v0.copy(), sixteen(w0, half)
                for t, g in enumerate(grads, 1):
                    param = written(param, t)
                    if "Slice" in entry:
                        param = master_slices(lib, entry, h, (w, m, v), g, param, scalars(t, wd, scale), half, bits)
                    elif "Apply" in entry:
                        done = np.full(1, 7.0, np.float32)
                        rc = call(lib, entry, [param, w, m, v] + scalars(t, wd, scale) + [g, done],
                                  [half] + ["float32"] * 11 + [half, "float32"])
                        feed(h, rc, param, w, m, v, done, half=half)
                    else:
                        out = np.full(n, 7, np.uint16)
                        rc = call(lib, entry, [param, w, m, v] + scalars(t, wd, scale) + [g, out],
                                  [half] + ["float32"] * 11 + [half, half])
                        feed(h, rc, param, w, m, v, out, half=half)
                        param = out


def master_slices(lib, entry, h, masters, g, param, hyper, half, bits):
    """Every rank's slice, as shard_state lays them out: with `bits` the whole gradient and parameter and
    where the slice starts, int16 out; else zero-padded slices of them. Returns the joined new parameter."""
    n = g.size
    k = -(-n // RANKS)
    pad = lambda a: np.concatenate([a, np.zeros(RANKS * k - n, a.dtype)])  # noqa: E731
    w, m, v = (pad(a) for a in masters)
    gp, pp = pad(g), pad(param)
    outs = []
    for rank in range(RANKS):
        part, start = slice(rank * k, (rank + 1) * k), rank * k
        lead = np.array([leftover_from(n, start, k), start if bits else 0], np.int64)
        out = np.full(k, 77, np.uint16)
        grad, current = (g, param) if bits else (gp[part].copy(), pp[part].copy())
        pieces = [w[part].copy(), m[part].copy(), v[part].copy()]
        rc = call(lib, entry, [lead, current] + pieces + hyper + [grad, out],
                  ["int64", half] + ["float32"] * 11 + [half, "int16" if bits else half])
        feed(h, rc, *pieces, out, half=half)
        w[part], m[part], v[part] = pieces
        outs.append(out)
    for a, b in zip(masters, (w, m, v)):
        a[:] = b[:n]
    return np.concatenate(outs)[:n]


def entry_put(lib, h):
    for n in SIZES:
        for half in HALVES:
            for gathered_dtype in (half, "int16"):
                param, done = np.zeros(n, np.uint16), np.full(1, 7.0, np.float32)
                gathered = (np.arange(RANKS * -(-n // RANKS)) * 7 % 65536).astype(np.uint16)
                feed(h, call(lib, "AdamOffloadMasterPut", [param, gathered, done], [half, gathered_dtype, "float32"]),
                     param, done, half=half)


def entry_names():
    names = [kind + f for kind in ("AdamOffloadStep", "AdamOffloadApply", "AdamOffloadSlice") for f in FLAGS]
    names += [kind + f + p for kind in ("AdamOffloadMaster", "AdamOffloadMasterApply", "AdamOffloadMasterSlice")
              for p in PREPS for f in FLAGS]
    names += ["AdamOffloadApplyBucket" + f for f in FLAGS]
    names += [kind + f for kind in ("AdamWOffloadStep", "AdamWOffloadApply", "AdamWOffloadApplyBucket",
                                    "AdamWOffloadMaster", "AdamWOffloadMasterApply", "AdamWOffloadMasterSlice")
              for f in ADAMW_FLAGS]
    return names + ["AdamOffloadMasterPut"]


def run_entry(mod, lib, entry, h):
    if entry in ("adamw_step", "adamw_master_step"):
        kernel_adamw(mod, entry, h)
    elif "ApplyBucket" in entry:
        entry_bucket(lib, entry, h)
    elif entry.startswith("AdamWOffload"):
        entry_adamw(lib, entry, h)
    elif entry in ("adam_delta", "adam_apply"):
        kernel_float32(mod, entry, h)
    elif entry == "adam_master_step":
        kernel_master(mod, h)
    elif entry == "AdamOffloadMasterPut":
        entry_put(lib, h)
    elif entry.startswith("AdamOffloadMaster"):
        entry_master(lib, entry, h)
    else:
        entry_float32(lib, entry, h)


def valid_arguments(entry, n=9):
    """One valid call of `entry` on n elements: the arrays and their dtype names."""
    rng = np.random.default_rng(1)
    f32 = lambda: (np.abs(rng.standard_normal(n)) * 0.01).astype(np.float32)  # noqa: E731
    if entry == "AdamOffloadMasterPut":
        return [np.zeros(n, np.uint16), np.arange(n + 1, dtype=np.uint16), np.zeros(1, np.float32)], \
            ["bfloat16", "int16", "float32"]
    if entry.startswith("AdamOffloadMaster"):
        g16 = sixteen(rng.standard_normal(n).astype(np.float32), "bfloat16")
        arrays = [sixteen(f32(), "bfloat16"), f32(), f32(), f32()] + scalars(2, DECAY, SCALE) + [g16]
        dtypes = ["bfloat16"] + ["float32"] * 11 + ["bfloat16"]
        if "Apply" in entry:
            return arrays + [np.zeros(1, np.float32)], dtypes + ["float32"]
        arrays, dtypes = arrays + [np.zeros(n, np.uint16)], dtypes + ["bfloat16"]
        if "Slice" in entry:
            return [np.array([n - n % 8, 0], np.int64)] + arrays, ["int64"] + dtypes
        return arrays, dtypes
    arrays = [f32(), f32()] + scalars(2) + [rng.standard_normal(n).astype(np.float32), np.zeros(n, np.float32)]
    if entry.startswith("AdamOffloadApply"):
        arrays = [f32()] + arrays[:-1] + [np.zeros(1, np.float32)]
    elif entry.startswith("AdamOffloadSlice"):
        arrays = [np.array([n - n % 8], np.int64)] + arrays
    return arrays, [a.dtype.name for a in arrays]


def abi(lib, h):
    """Every entry point with each input given another dtype or fewer elements (never more than its
    buffer holds), one at a time, then a short argument list, a long one and beta1_power = 1."""
    for entry in entry_names():
        if entry.startswith("AdamWOffload") or "Bucket" in entry:  # their return codes: tests/entry_points
            continue
        base, dtypes = valid_arguments(entry)
        cases = [({}, dtypes)]  # (inputs replaced, by index; dtype names)
        for i, a in enumerate(base):
            for other in ("float32", "float16", "bfloat16", "int16", "int32", "int64", "float64", None):
                if other != dtypes[i]:
                    cases.append(({}, dtypes[:i] + [other] + dtypes[i + 1:]))
            for count in sorted({0, 1, a.size - 1} - {a.size}):
                cases.append(({i: lambda c, i=i, count=count: c[i].reshape(-1)[:count]}, dtypes))
            cases.append(({i: lambda c, i=i: c[i].reshape(-1)[:1].reshape(())}, dtypes))
        cases.append(({len(base) - 1: None}, dtypes[:-1]))
        cases.append(({len(base): lambda c: c[-1]}, dtypes + [dtypes[-1]]))
        if entry != "AdamOffloadMasterPut":  # beta1_power comes right after the moments
            at = 2 + entry.startswith(("AdamOffloadApply", "AdamOffloadSlice")) + 2 * ("Master" in entry) + \
                ("MasterSlice" in entry)
            cases.append(({at: lambda c: np.ones(1, np.float32)}, dtypes))
        if "MasterSlice" in entry:
            for lead in ([9, -1], [9, 4], [9, 9], [9, 20], [-3, 0], [3, 2]):
                cases.append(({0: lambda c, lead=lead: np.array(lead, np.int64)}, dtypes))
        for replaced, names in cases:
            copies = [a.copy() for a in base]
            arrays = list(copies) + [None]
            for i, make in replaced.items():
                arrays[i] = None if make is None else make(copies)
            arrays = [a for a in arrays if a is not None]
            feed(h, call(lib, entry, arrays, names), *copies)


def main(quick=False, json_path=None, levels=None):
    global SIZES
    if quick:
        SIZES = [n for n in SIZES if n < 1 << 17]
    c, c_lib = load("_C")
    bench, bench_lib = load("_bench")
    isas = c.available_isas() if levels is None else [isa for isa in c.available_isas() if isa in levels]
    if levels is not None and len(isas) != len(set(levels)):
        raise SystemExit(f"levels {sorted(set(levels) - set(isas))} are not available here: {c.available_isas()}")
    print("# digest of", c.__file__, "and", bench.__file__)  # not part of the total
    tunings = {"plain": dict(grain=64, stream_min=NEVER, prefetch_min=NEVER),
               "stream": dict(grain=64, stream_min=0, prefetch_min=0)}
    runs = [("C", c, c_lib, None)] + [("lab-" + k, bench, bench_lib, t) for k, t in tunings.items()]
    lines = []
    for entry in ["adam_delta", "adam_apply", "adam_master_step", "adamw_step", "adamw_master_step"] + entry_names():
        for isa in isas:
            for threads in THREADS:
                h = hashlib.sha256()
                for name, mod, lib, tuning in runs:
                    mod.set_isa(isa)
                    mod.set_num_threads(threads)
                    if tuning:
                        mod.set_tuning(**tuning)
                    h.update(name.encode())
                    run_entry(mod, lib, entry, h)
                lines.append(f"{entry} {isa} threads={threads} {h.hexdigest()}")
                print(lines[-1], flush=True)
    h = hashlib.sha256()
    abi(c_lib, h)
    lines.append(f"abi {h.hexdigest()}")
    print(lines[-1])
    print("total", hashlib.sha256("\n".join(lines).encode()).hexdigest())
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"machine": os.uname().machine, "quick": quick, "lines": lines}, f, indent=0)


def by_entry(lines):
    """{'adam_delta threads=1': {'avx2': digest, ...}, 'abi': {'': digest}} from main's lines."""
    out = {}
    for line in lines:
        words = line.split()
        if words[0] == "abi":
            out.setdefault("abi", {})[""] = words[1]
        else:
            out.setdefault(f"{words[0]} {words[2]}", {})[words[1]] = words[3]
    return out


def compare(paths):
    """0 if every entry point has one digest over every level, thread count and file; else lists them."""
    runs = []
    for path in paths:
        with open(path) as f:
            runs.append(json.load(f))
    if len({run["quick"] for run in runs}) != 1:
        raise SystemExit("the files were made with and without --quick: they cannot match")
    tables = [by_entry(run["lines"]) for run in runs]
    bad = 0
    for key in tables[0]:
        seen = {(run["machine"], level): digest for run, table in zip(runs, tables)
                for level, digest in table.get(key, {"missing": None}).items()}
        if len(set(seen.values())) != 1:
            bad += 1
            print(f"DIFFERENT {key}: " + ", ".join(f"{m}/{lv}={d and d[:12]}" for (m, lv), d in seen.items()))
    levels = sorted({f"{run['machine']}/{lv}" for run, t in zip(runs, tables) for k in t for lv in t[k] if lv})
    print(f"{len(tables[0]) - bad} of {len(tables[0])} entry digests equal across {', '.join(levels)}")
    return 1 if bad else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="leave out the 2^17 + 5 size")
    parser.add_argument("--json", metavar="FILE", help="also write the digests to FILE")
    parser.add_argument("--levels", metavar="L1,L2", help="only these of the build's levels (default: all)")
    parser.add_argument("--compare", nargs="+", metavar="FILE", help="compare --json files; make no digest")
    args = parser.parse_args()
    if args.compare:
        sys.exit(compare(args.compare))
    main(args.quick, args.json, args.levels.split(",") if args.levels else None)
