"""Builds the one private extension, mindspore_offload._C, from csrc/*.cpp.

MINDSPORE_OFFLOAD_BENCH=1 also builds mindspore_offload._bench (`make bench` and `make test` ask for it):
the same kernel sources and flags plus the lab equipment in csrc/lab/ (bandwidth probe, settable size
thresholds). It is never part of what users install.

Base flags stay at the x86-64 baseline; each instruction-set kernel raises its own target inside its
file (#pragma GCC target), and the level is chosen at run time. MINDSPORE_OFFLOAD_NATIVE=1 tunes a
local build for this CPU only (# opt-in: such a build is not portable and must never be shipped).

The compiler must be GCC (C++17; built and tested with GCC 12): the per-level files raise their target
with `#pragma GCC target`, which clang does not honour, so their intrinsics would not compile there.
"""
import importlib.util
import os
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

# Compile each extension's sources on every CPU (the extensions themselves one after another: _C and
# _bench share object paths, so they must not be built at the same time).
ParallelCompile(default=0).install()

ext = Pybind11Extension(
    "mindspore_offload._C",
    sorted(glob("csrc/*.cpp")),
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
        sorted(glob("csrc/*.cpp")) + sorted(glob("csrc/lab/*.cpp")),
        include_dirs=["csrc"],
        define_macros=[("MSO_LAB", "1")],
        extra_compile_args=ext.extra_compile_args,
        extra_link_args=ext.extra_link_args,
        cxx_std=17,
    ))

setup(ext_modules=ext_modules, cmdclass={"build_ext": build_ext})
