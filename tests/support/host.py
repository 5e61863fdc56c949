"""The host the tests run on. Under qemu-user (`make test-aarch64`, tools/test_aarch64.sh sets
QEMU_LD_PREFIX) every instruction is emulated, so the largest arrays are left out there, each with a
stated reason: the same code paths run at the smaller sizes, and the digests (tests/support/digest.py)
split arrays of 4099 elements over threads."""
import os
import platform

import pytest

UNDER_EMULATION = bool(os.environ.get("QEMU_LD_PREFIX"))


def large(n):
    """The size n as a parameter that is skipped under emulation."""
    return pytest.param(n, marks=pytest.mark.skipif(
        UNDER_EMULATION, reason=f"{n} elements take minutes a step under qemu-user; the smaller sizes and the "
        "digests cover the same code paths there"))

# The tests that compare bits with MindSpore's own kernel (ops.AdamNoUpdateParam) pin the rounding of
# MindSpore 2.10's x86-64 binary, read from its disassembly. On aarch64 MindSpore's kernel is another
# binary (its NEON code and its leftover loop, under FPCR.FZ) and rounds otherwise; this kernel gives the
# x86-64 bits there, which the digests check. The parity tests against nn.AdamOffload still run.
NOT_MINDSPORE_X86 = pytest.mark.skipif(
    platform.machine() != "x86_64",
    reason="pins MindSpore's x86-64 rounding; aarch64 MindSpore rounds otherwise (support/host.py)")
