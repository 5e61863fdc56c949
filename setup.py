"""Builds the one private extension, mindspore_offload._C, from csrc/*.cpp.

MINDSPORE_OFFLOAD_BENCH=1 also builds mindspore_offload._bench (`make bench` and `make test` ask for it):
the same kernel sources and flags plus the lab equipment in csrc/lab/ (bandwidth probe, settable size
thresholds). It is never part of what users install.

Base flags stay at the x86-64 baseline; each instruction-set kernel raises its own target inside its
file (#pragma GCC target), and the level is chosen at run time. MINDSPORE_OFFLOAD_NATIVE=1 tunes a
local build for this CPU only (# opt-in: such a build is not portable and must never be shipped).
"""
import os
from glob import glob

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

# fp-contract=off: only the fused multiply-adds written in the kernels are fused, so every level
# rounds the same way. no-math-errno: sqrt never sets errno, so it stays one instruction.
flags = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-Wall", "-Wextra"]
if os.environ.get("MINDSPORE_OFFLOAD_NATIVE") == "1":
    flags.append("-march=native")  # opt-in local build only, never in what we ship
if os.environ.get("MINDSPORE_OFFLOAD_SANITIZE") == "1":
    flags = ["-O1", "-g", "-ffp-contract=off", "-fno-math-errno", "-fsanitize=address,undefined",
             "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]

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
if os.environ.get("MINDSPORE_OFFLOAD_BENCH") == "1":
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
