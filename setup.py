"""Builds the one private extension, mindspore_offload._C, from csrc/*.cpp.

MINDSPORE_OFFLOAD_BENCH=1 also builds mindspore_offload._bench (`make bench` and `make test` ask for it):
the same kernel sources and flags plus the lab equipment in csrc/lab/ (bandwidth probe, settable size
thresholds). It is never part of what users install.

The sources follow the target's CPU family: every csrc/*.cpp except the level files (csrc/adam_<level>.cpp),
plus the levels of that family: AVX-512, AVX2 and scalar on x86-64; NEON and scalar on aarch64. Base
flags stay at the family's baseline (no -m flag at all: the same flags on both); each x86 level raises its
own target inside its file (#pragma GCC target), NEON is part of ARMv8-A's baseline, and the level is
chosen at run time. MINDSPORE_OFFLOAD_NATIVE=1 tunes a local build for this CPU only (# opt-in: such a
build is not portable and must never be shipped).

The compiler must be GCC (C++17; built and tested with GCC 12, natively on x86-64 and as
aarch64-linux-gnu-g++ for aarch64): the x86 level files raise their target with `#pragma GCC target`,
which clang does not honour, so their intrinsics would not compile there.
"""
import importlib.util
import os
import sysconfig
from glob import glob

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup


def _load_env():
    """mindspore_offload/_env.py, where every environment variable is read, loaded by path: the package
    itself cannot be imported before it is built."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mindspore_offload", "_env.py")
    spec = importlib.util.spec_from_file_location("_mindspore_offload_env", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_env = _load_env()

# fp-contract=off: only the fused multiply-adds written in the kernels are fused, so every level
# rounds the same way. no-math-errno: sqrt never sets errno, so it stays one instruction.
flags = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-Wall", "-Wextra"]
if _env.build_switch("MINDSPORE_OFFLOAD_NATIVE"):
    flags.append("-march=native")  # opt-in local build only, never in what we ship
if _env.build_switch("MINDSPORE_OFFLOAD_SANITIZE"):
    flags = ["-O1", "-g", "-ffp-contract=off", "-fno-math-errno", "-fsanitize=address,undefined",
             "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]

# The instruction-set levels each CPU family builds (one csrc/adam_<level>.cpp each), by the machine part of
# the platform Python builds for (sysconfig honours _PYTHON_HOST_PLATFORM for a cross build).
LEVELS = {"x86_64": ("avx512", "avx2", "scalar"), "aarch64": ("neon", "scalar")}
ALL_LEVELS = {level for levels in LEVELS.values() for level in levels}


def family():
    machine = sysconfig.get_platform().rsplit("-", 1)[-1]
    if machine not in LEVELS:
        raise SystemExit(f"mindspore-offload builds for x86-64 and aarch64 only, not for '{machine}' "
                         f"({sysconfig.get_platform()}).")
    return machine


def kernel_sources():
    """csrc/*.cpp less the level files of other families."""
    level_file = {f"csrc/adam_{level}.cpp" for level in ALL_LEVELS}
    chosen = {f"csrc/adam_{level}.cpp" for level in LEVELS[family()]}
    return sorted(p for p in glob("csrc/*.cpp") if p not in level_file or p in chosen)


# Compile each extension's sources on every CPU (the extensions themselves one after another: _C and
# _bench share object paths, so they must not be built at the same time).
ParallelCompile(default=0).install()

ext = Pybind11Extension(
    "mindspore_offload._C",
    kernel_sources(),
    depends=sorted(glob("csrc/*.h")),  # a changed header (adam_body.h, half.h) rebuilds its users
    include_dirs=["csrc"],
    extra_compile_args=flags,
    extra_link_args=["-pthread"] + (["-fsanitize=address,undefined"] if "-fsanitize=address,undefined" in flags else []),
    cxx_std=17,
)

ext_modules = [ext]
if _env.build_switch("MINDSPORE_OFFLOAD_BENCH"):
    ext_modules.append(Pybind11Extension(
        "mindspore_offload._bench",
        kernel_sources() + sorted(glob("csrc/lab/*.cpp")),
        depends=ext.depends + sorted(glob("csrc/lab/*.h")),  # as _C's: a changed header rebuilds it too
        include_dirs=["csrc"],
        define_macros=[("MSO_LAB", "1")],
        extra_compile_args=ext.extra_compile_args,
        extra_link_args=ext.extra_link_args,
        cxx_std=17,
    ))

setup(ext_modules=ext_modules, cmdclass={"build_ext": build_ext})
