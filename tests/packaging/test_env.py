"""Every environment variable is read in mindspore_offload/_env.py, with one rule: unset or empty is the
default, a listed value is taken, anything else is a ValueError naming the variable, the value and the
allowed values."""
import os
import re
import subprocess
import sys
from glob import glob

import pytest

from mindspore_offload import _env
from support import paths

ROOT = str(paths.ROOT)
ISA_ALLOWED = "must be one of 'avx512', 'avx2', 'neon', 'scalar'"
SWITCH_ALLOWED = "must be one of '0', '1'"

# The ranges of the numbers, each bounded by what receives it (_env.py says why).
THREADS_RANGE = "must be a whole number in [1, 1024]"
SIZE_T_RANGE = "must be a whole number in [0, 18446744073709551615]"
INT64_RANGE = "must be a whole number in [0, 9223372036854775807]"
SPIN_RANGE = "must be a whole number in [0, 1000000]"
# Past every bound: the C++ int (2^31), the size_t (2^64), and more digits than int() takes from a string.
HUGE = ["1e23", "100000000000000000000000", str(2**64), "9" * 5000]

# (variable, read, bad values, expected message before "but got '<value>'")
BAD = [
    ("MINDSPORE_OFFLOAD_ISA", _env.isa, ["avx1024", "AVX512", "avx2 ", " scalar", "sse", "NEON", "sve"], ISA_ALLOWED),
    ("MINDSPORE_OFFLOAD_NUM_THREADS", _env.num_threads,
     ["zero", "0", "-1", "1.5", " 2", "2 ", "\u0663", "1e3", "1025", "4000000000", str(2**31), *HUGE],
     THREADS_RANGE),
    ("MINDSPORE_OFFLOAD_STREAM_MIN", _env.stream_min, ["-1", "lots", "1.5", " 5", *HUGE], SIZE_T_RANGE),
    ("MINDSPORE_OFFLOAD_PREFETCH_MIN", _env.prefetch_min, ["-1", "lots", "1.5", " 5", *HUGE],
     SIZE_T_RANGE),
    ("MINDSPORE_OFFLOAD_SHARD_MIN_SIZE", _env.shard_min_size, ["-1", "4k", "1.5", " 8", "65536 ", str(2**63), *HUGE],
     INT64_RANGE),
    ("MINDSPORE_OFFLOAD_SPIN_US", _env.spin_us, ["-1", "100us", "0.5", " 100", "1000001", str(2**32), *HUGE],
     SPIN_RANGE),
    ("MINDSPORE_OFFLOAD_HOST_APPLY", _env.host_apply, ["false", "true", "off", "no", "2", " 0", "0 "],
     SWITCH_ALLOWED),
    ("MINDSPORE_OFFLOAD_NATIVE", lambda: _env.build_switch("MINDSPORE_OFFLOAD_NATIVE"), ["yes", "true", "on", "2"],
     SWITCH_ALLOWED),
    ("MINDSPORE_OFFLOAD_SANITIZE", lambda: _env.build_switch("MINDSPORE_OFFLOAD_SANITIZE"), ["yes", "false", "1 "],
     SWITCH_ALLOWED),
]


@pytest.mark.parametrize("name, read, value, message",
                         [pytest.param(n, r, v, m, id=f"{n}={v[:30]!r}") for n, r, values, m in BAD for v in values])
def test_bad_value_is_an_error_naming_the_allowed_ones(monkeypatch, name, read, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=re.escape(f"{name} {message}, but got '{value}'.")):
        read()


def test_every_bad_value_id_is_unique():
    ids = [f"{n}={v[:30]!r}" for n, _, values, _ in BAD for v in values]
    assert len(ids) == len(set(ids))


# (variable, read, {value: result}, result when unset or empty)
GOOD = [
    ("MINDSPORE_OFFLOAD_ISA", _env.isa, {"avx512": "avx512", "avx2": "avx2", "neon": "neon", "scalar": "scalar"}, None),
    ("MINDSPORE_OFFLOAD_NUM_THREADS", _env.num_threads, {"1": 1, "4": 4, "64": 64, "1024": 1024, "0012": 12}, None),
    ("MINDSPORE_OFFLOAD_STREAM_MIN", _env.stream_min, {"0": 0, "12345": 12345, str(2**64 - 1): 2**64 - 1}, None),
    ("MINDSPORE_OFFLOAD_PREFETCH_MIN", _env.prefetch_min, {"0": 0, "12345": 12345, str(2**64 - 1): 2**64 - 1}, None),
    ("MINDSPORE_OFFLOAD_SHARD_MIN_SIZE", _env.shard_min_size,
     {"0": 0, "65536": 65536, str(2**63 - 1): 2**63 - 1, "0" * 30 + "7": 7}, None),
    ("MINDSPORE_OFFLOAD_SPIN_US", _env.spin_us, {"0": 0, "50": 50, "1000000": 1000000}, None),
    ("MINDSPORE_OFFLOAD_HOST_APPLY", _env.host_apply, {"1": True, "0": False}, True),
    ("MINDSPORE_OFFLOAD_NATIVE", lambda: _env.build_switch("MINDSPORE_OFFLOAD_NATIVE"), {"1": True, "0": False},
     False),
    ("MINDSPORE_OFFLOAD_SANITIZE", lambda: _env.build_switch("MINDSPORE_OFFLOAD_SANITIZE"), {"1": True, "0": False},
     False),
    ("MS_CUSTOM_AOT_WHITE_LIST", _env.aot_white_list, {"/some/folder": "/some/folder"}, None),
    ("AITURBO", _env.aiturbo, {"1": True, "0": False, "true": False}, False),  # MindSpore's reading, not ours
]


@pytest.mark.parametrize("name, read, values, default", [pytest.param(*g, id=g[0]) for g in GOOD])
def test_allowed_values_and_the_default(monkeypatch, name, read, values, default):
    monkeypatch.delenv(name, raising=False)
    assert read() == default
    monkeypatch.setenv(name, "")
    assert read() == default
    for value, expected in values.items():
        monkeypatch.setenv(name, value)
        assert read() == expected


def test_build_switch_refuses_an_unknown_name():
    with pytest.raises(ValueError, match="'MINDSPORE_OFFLOAD_FAST' is not a build switch"):
        _env.build_switch("MINDSPORE_OFFLOAD_FAST")


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINDSPORE_OFFLOAD_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    return {**env, **extra}


def test_setup_py_refuses_a_bad_build_switch():
    proc = subprocess.run([sys.executable, "setup.py", "--version"], cwd=ROOT, capture_output=True, text=True,
                          env=_clean_env(MINDSPORE_OFFLOAD_NATIVE="yes"))
    assert proc.returncode != 0
    assert f"MINDSPORE_OFFLOAD_NATIVE {SWITCH_ALLOWED}, but got 'yes'" in proc.stderr


def test_isa_this_cpu_lacks_fails_the_import():
    from mindspore_offload import kernel

    missing = [isa for isa in _env.ISAS if isa not in kernel.available_isas()]
    if not missing:
        pytest.skip("this CPU runs every level")
    proc = subprocess.run([sys.executable, "-c", "import mindspore_offload.kernel"], capture_output=True, text=True,
                          env=_clean_env(MINDSPORE_OFFLOAD_ISA=missing[0]))
    assert proc.returncode != 0
    assert f"MINDSPORE_OFFLOAD_ISA='{missing[0]}' is not supported by this CPU" in proc.stderr


@pytest.mark.parametrize("name, value, message", [
    ("MINDSPORE_OFFLOAD_NUM_THREADS", "4000000000", THREADS_RANGE),
    ("MINDSPORE_OFFLOAD_STREAM_MIN", "100000000000000000000000", SIZE_T_RANGE),
    ("MINDSPORE_OFFLOAD_PREFETCH_MIN", str(2**64), SIZE_T_RANGE),
    ("MINDSPORE_OFFLOAD_SPIN_US", str(2**32), SPIN_RANGE),
])
def test_an_out_of_range_number_fails_the_import_with_the_range(name, value, message):
    """Not pybind11's 'incompatible function arguments' TypeError from the C++ call the value would reach."""
    proc = subprocess.run([sys.executable, "-c", "import mindspore_offload.kernel"], capture_output=True, text=True,
                          env=_clean_env(**{name: value}))
    assert proc.returncode != 0
    assert f"ValueError: {name} {message}, but got '{value}'." in proc.stderr, proc.stderr[-2000:]


def test_the_largest_thresholds_reach_the_kernel():
    """The upper bound is the C++ size_t's: the largest value passes through to the kernel unchanged."""
    code = ("from mindspore_offload import kernel, _C; t = _C.thresholds(); "
            "print(t['stream_min'], t['prefetch_min'], t['spin_us'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_clean_env(MINDSPORE_OFFLOAD_STREAM_MIN=str(2**64 - 1), MINDSPORE_OFFLOAD_PREFETCH_MIN="0",
                                         MINDSPORE_OFFLOAD_SPIN_US="1000000"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == [str(2**64 - 1), "0", "1000000"]


def test_bad_host_apply_fails_the_optimizer(monkeypatch):
    pytest.importorskip("mindspore")
    from mindspore import nn

    from mindspore_offload import AdamOffload

    monkeypatch.setenv("MINDSPORE_OFFLOAD_HOST_APPLY", "false")
    with pytest.raises(ValueError, match=f"MINDSPORE_OFFLOAD_HOST_APPLY {SWITCH_ALLOWED}, but got 'false'"):
        AdamOffload(nn.Dense(3, 2).trainable_params())


def test_no_other_file_reads_the_environment():
    """The one-place rule, kept: the package, setup.py and the C++ sources read no variable themselves."""
    sources = glob(os.path.join(ROOT, "mindspore_offload", "*.py")) + [os.path.join(ROOT, "setup.py")]
    sources += glob(os.path.join(ROOT, "csrc", "**", "*.*"), recursive=True)
    readers = re.compile(r"os\.environ|os\.getenv|getenv\s*\(")
    offenders = []
    for path in sources:
        if os.path.basename(path) == "_env.py":
            continue
        with open(path, encoding="utf-8") as f:
            offenders += [f"{os.path.relpath(path, ROOT)}:{i}" for i, line in enumerate(f, 1) if readers.search(line)]
    assert not offenders, f"read the environment through mindspore_offload/_env.py instead: {offenders}"
