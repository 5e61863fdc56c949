"""What we ship imports on any x86-64 CPU: AVX instructions appear only in the per-level namespaces.

Every function whose code uses a VEX or EVEX instruction must belong to ``mso::avx512`` or ``mso::avx2``
(the namespaces csrc/adam_avx512.cpp and csrc/adam_avx2.cpp compile the one kernel body into). The
check reads demangled names, so it holds whether or not the compiler inlines the body's templates; an
``-march=native`` build fails it, since then the thread pool, bindings and scalar level use AVX too.
"""
import platform
import re
import shutil
import subprocess

import pytest

from mindspore_offload import kernel

LEVEL_NAMESPACE = re.compile(r"(^|[\s<,(])mso::(avx512|avx2)::")


def avx_functions(path):
    listing = subprocess.run(["objdump", "-d", "-C", "--no-show-raw-insn", path], check=True,
                             capture_output=True, text=True).stdout
    function, users = None, set()
    for line in listing.splitlines():
        header = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if header:
            function = header.group(1)
        elif re.search(r"\tv[a-z]", line) or "ymm" in line or "zmm" in line:
            users.add(function)
    return users


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64's levels: aarch64 builds NEON, part of its baseline")
@pytest.mark.skipif(shutil.which("objdump") is None, reason="needs binutils' objdump")
def test_only_the_level_namespaces_use_vex_or_evex_instructions():
    users = avx_functions(kernel.library_path())
    levels = {f for f in users if LEVEL_NAMESPACE.search(f)}
    assert any("mso::avx512::" in f for f in levels) and any("mso::avx2::" in f for f in levels), \
        f"the vector levels are missing: {sorted(users)[:5]}"
    outside = sorted(users - levels)
    assert not outside, (f"{len(outside)} functions outside mso::avx512 and mso::avx2 use AVX instructions (an "
                         f"-march=native build? it would fault on older CPUs), e.g. {outside[:5]}")
