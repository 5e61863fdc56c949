"""The lab build (mindspore_offload._bench) and what it adds, kept out of the shipped _C."""
import os

import numpy as np
import pytest

from mindspore_offload import _C, kernel
from support.host import large

bench = pytest.importorskip("mindspore_offload._bench",
                            reason="the lab build is made by `make test` or MINDSPORE_OFFLOAD_BENCH=1")

SIZES = [0, 1, 7, 16, 17, 63, 64, 65, 1000, 4099]


def test_the_shipped_module_carries_no_lab_equipment():
    for name in ("bandwidth_probe", "bandwidth_probe_master", "get_tuning", "set_tuning"):
        assert not hasattr(_C, name), name
        assert hasattr(bench, name), name


@pytest.mark.parametrize("n", SIZES + [large((1 << 18) + 3)])
def test_lab_build_gives_the_bits_of_the_shipped_one(n):
    """Tests that force thresholds run on the lab build; this ties its kernel to _C's, level by level."""
    rng = np.random.default_rng(n)
    m0, v0, g = (rng.standard_normal(n).astype(np.float32) for _ in range(3))
    v0 = np.abs(v0)
    args = (1e-3, 0.9, 0.999, 1e-8, 0.9**3, 0.999**3, False, False)
    previous = kernel.active_isa(), bench.active_isa()
    try:
        for isa in kernel.available_isas():
            kernel.set_isa(isa)
            bench.set_isa(isa)
            results = []
            for module in (_C, bench):
                m, v, d = m0.copy(), v0.copy(), np.empty_like(g)
                module.adam_delta(m, v, g, d, *args)
                results.append((m, v, d))
            for a, b in zip(*results):
                assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), isa
    finally:
        kernel.set_isa(previous[0])
        bench.set_isa(previous[1])


@pytest.mark.parametrize("pattern", ["delta", "apply"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("isa", kernel.available_isas())
@pytest.mark.parametrize("n", SIZES)
def test_probe_moves_every_element_at_every_level(n, isa, stream, pattern):
    """The probe must really touch every element with its pattern, or it is no limit; an offset of one
    float puts the streamed output off its vector boundary, so the head loop runs too."""
    saved = bench.get_tuning()
    bench.set_tuning(64, saved["stream_min"])  # split small arrays over threads as well
    try:
        base = [np.arange(n + 1, dtype=np.float32) * k for k in (1, 2, 3, 4)]
        m, v, g, out = (b[1:] for b in base)
        em, ev = m + g, v + g
        expect = em - ev if pattern == "delta" else out + (em - ev)
        bench.bandwidth_probe(pattern, isa, stream, m, v, g, out)
    finally:
        bench.set_tuning(**saved)
    assert np.array_equal(m, em) and np.array_equal(v, ev) and np.array_equal(out, expect)


@pytest.mark.parametrize("isa", kernel.available_isas())
@pytest.mark.parametrize("n", SIZES)
def test_master_probe_moves_every_element_at_every_level(n, isa):
    """The probe of the master pass's pattern (the lab's bandwidth_probe_master) must read and write all
    five streams over every element."""
    saved = bench.get_tuning()
    bench.set_tuning(64, saved["stream_min"])
    try:
        m, v, p0 = np.zeros(n, np.float32), np.ones(n, np.float32), np.arange(n, dtype=np.float32) + 4
        p, g16, out16 = p0.copy(), np.full(n, 0x3C00, np.uint16), np.full(n, 0x7FFF, np.uint16)
        bench.bandwidth_probe_master(isa, m, v, g16, p, out16)
    finally:
        bench.set_tuning(**saved)
    assert (m > 0).all() and (v > 1).all() and (p < p0).all() and (out16 != 0x7FFF).all()


def test_probe_rejects_unknown_pattern():
    x = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="'pattern' must be 'delta'"):
        bench.bandwidth_probe("copy", "scalar", False, x, x.copy(), x.copy(), x.copy())


def _python(code, **env):
    import subprocess
    import sys

    full = {k: v for k, v in os.environ.items() if not k.startswith("MINDSPORE_OFFLOAD_")}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True)


def _cache_bytes(level):
    base = "/sys/devices/system/cpu/cpu0/cache"
    for index in sorted(os.listdir(base)):
        with open(f"{base}/{index}/level") as f, open(f"{base}/{index}/type") as t, open(f"{base}/{index}/size") as s:
            if f.read().strip() == str(level) and t.read().strip() != "Instruction":
                size = s.read().strip()
                return int(size[:-1]) << {"K": 10, "M": 20}[size[-1]]
    return None


@pytest.mark.skipif(not os.path.isdir("/sys/devices/system/cpu/cpu0/cache"), reason="needs Linux sysfs caches")
def test_thresholds_follow_the_caches_this_cpu_reports():
    tuning = _python("from mindspore_offload import _bench; print(_bench.get_tuning())")
    tuning = eval(tuning.stdout)  # a dict of ints printed by the child
    l2, l3 = _cache_bytes(2), _cache_bytes(3)
    if l3:
        assert tuning["stream_min"] == l3 // 16
    with open("/proc/cpuinfo") as f:
        intel = "GenuineIntel" in f.read()
    if l2:
        assert tuning["prefetch_min"] == (l2 // 4 if intel else 2**64 - 1)


def test_threshold_environment_overrides_and_errors():
    out = _python("from mindspore_offload import kernel, _C; print(_C.thresholds())",
                  MINDSPORE_OFFLOAD_STREAM_MIN="12345", MINDSPORE_OFFLOAD_PREFETCH_MIN="0")
    assert eval(out.stdout)["stream_min"] == 12345 and eval(out.stdout)["prefetch_min"] == 0
    for name in ("MINDSPORE_OFFLOAD_STREAM_MIN", "MINDSPORE_OFFLOAD_PREFETCH_MIN"):
        for bad in ("1e6", "-1", "lots", " 5"):
            bad_run = _python("from mindspore_offload import kernel", **{name: bad})
            assert bad_run.returncode != 0
            assert f"ValueError: {name} must be a whole number in [0, {2**64 - 1}], but got '{bad}'" in bad_run.stderr, \
                bad_run.stderr
