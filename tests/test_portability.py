"""What we ship imports on any x86-64 CPU: only the per-level functions use AVX instructions."""
import re
import shutil
import subprocess

import pytest

from mindspore_offload import kernel


@pytest.mark.skipif(shutil.which("objdump") is None, reason="needs binutils' objdump")
def test_only_the_level_specific_functions_use_vex_or_evex_instructions():
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", kernel.library_path()], check=True,
                             capture_output=True, text=True).stdout
    function, users = None, set()
    for line in listing.splitlines():
        header = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if header:
            function = header.group(1)
        elif re.search(r"\tv[a-z]", line) or "ymm" in line or "zmm" in line:
            users.add(function)
    assert users, "no AVX code at all: the vector levels are missing"
    outside = sorted(f for f in users if not re.search(r"avx2|avx512", f))
    assert not outside, (f"{len(outside)} functions outside the per-level ones use AVX instructions (an "
                         f"-march=native build? it would fault on older CPUs), e.g. {outside[:5]}")
