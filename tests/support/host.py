"""The host the tests run on. Under qemu-user (`make test-aarch64`, tools/test_aarch64.sh sets
QEMU_LD_PREFIX) every instruction is emulated, so the largest arrays are left out there, each with a
stated reason: the same code paths run at the smaller sizes, and the digests (tests/support/digest.py)
split arrays of 4099 elements over threads."""
import os

import pytest

UNDER_EMULATION = bool(os.environ.get("QEMU_LD_PREFIX"))


def large(n):
    """The size n as a parameter that is skipped under emulation."""
    return pytest.param(n, marks=pytest.mark.skipif(
        UNDER_EMULATION, reason=f"{n} elements take minutes a step under qemu-user; the smaller sizes and the "
        "digests cover the same code paths there"))
