"""Every environment variable mindspore-offload reads is read here, and nowhere else.

All follow one rule: unset or empty means the default; any other value must be exactly one of the
allowed values (no case folding, no stripped spaces), or a ValueError names the variable, the value
and what is allowed. A typo never silently means the default.

At run time (read when `mindspore_offload.kernel` is imported, or an `AdamOffload` is built):
    MINDSPORE_OFFLOAD_ISA          "avx512", "avx2", "neon" or "scalar": force the kernel's level.
    MINDSPORE_OFFLOAD_NUM_THREADS  a whole number in [1, 1024]: threads a large array is split over.
    MINDSPORE_OFFLOAD_HOST_APPLY   "1" (default) or "0": on the CPU backend, "0" makes the kernel return
                                   the update for the graph to add instead of adding it itself.
    MINDSPORE_OFFLOAD_STREAM_MIN   a whole number in [0, 2^64 - 1]: elements from which the delta is written
                                   with streaming stores (default: from the CPU's L3 size).
    MINDSPORE_OFFLOAD_PREFETCH_MIN a whole number in [0, 2^64 - 1]: a thread's chunk this long prefetches
                                   ahead (default: from the L2 size on Intel, never elsewhere).
    MINDSPORE_OFFLOAD_SPIN_US      a whole number in [0, 1000000]: microseconds an idle pool thread spins for
                                   the next pass before it sleeps (default 100, csrc/threadpool.h).
    The launcher's rank counts     LOCAL_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_SIZE, MPI_LOCALNRANKS, MS_ROLE,
                                   MS_WORKER_NUM: read as they are (not ours), for the default thread count.
    MINDSPORE_OFFLOAD_SHARD_MIN_SIZE  a whole number in [0, 2^63 - 1]: with shard_state=True, the smallest
                                   parameter (in elements) whose moments are sliced over the ranks.
    MS_CUSTOM_AOT_WHITE_LIST       MindSpore's own: read only to check early that it allows our library.
    AITURBO                        MindSpore's own: "1" hands checkpoints to aiturbo, which the crash-safe
                                   save refuses. Read exactly as MindSpore reads it, not by our rule.
At build time (setup.py loads this file by path; the package is not importable yet):
    MINDSPORE_OFFLOAD_NATIVE       "0" (default) or "1": tune a local build for this CPU (never ship it).
    MINDSPORE_OFFLOAD_SANITIZE     "0" (default) or "1": build with AddressSanitizer and UBSan.
    MINDSPORE_OFFLOAD_BENCH        "0" (default) or "1": also build the lab module, mindspore_offload._bench.

This file imports nothing from the package, so setup.py can load it on its own.
"""
import os
import sys

ISAS = ("avx512", "avx2", "neon", "scalar")  # x86-64: avx512, avx2; aarch64: neon; both: scalar
_SWITCH = ("0", "1")

# The largest value each number may take, stated in its error: a value past it is a ValueError here, not a
# TypeError from pybind11 or a pool of millions of threads later.
# The thread count reaches the C++ pool as an int (csrc/threadpool.h), and the pool starts every thread at
# once. One thread per CPU is what helps, and glibc's cpu_set_t, through which the pool reads the CPUs it
# may use, holds 1024: past that, threads only take turns on the same cores. The same bound caps the
# default (_threads.py) and kernel.set_num_threads.
MAX_NUM_THREADS = 1024
# The size thresholds reach the kernel as std::size_t (override_thresholds in csrc/bindings.cpp, tuning.h),
# whose largest value is the kernel's own "never". CPython's Py_ssize_t has size_t's width.
SIZE_MAX = 2 * sys.maxsize + 1
# The sharding threshold is compared with element counts, which MindSpore keeps as int64 (a shape's
# dimensions): from the largest one on, no parameter is sliced, so a larger value could mean nothing more.
INT64_MAX = 2**63 - 1
# The spin bound reaches the pool as a uint32 of microseconds (csrc/threadpool.h). A second is already far
# past any use: a thread that spins that long after each pass burns a CPU while the process idles.
MAX_SPIN_US = 1_000_000


def _read(name):
    """The variable's value, or None when it is unset or empty."""
    value = os.environ.get(name, "")
    return value if value != "" else None


def _one_of(name, allowed, default, consequence):
    value = _read(name)
    if value is None:
        return default
    if value not in allowed:
        choices = ", ".join(f"'{a}'" for a in allowed)
        raise ValueError(f"{name} must be one of {choices}, but got '{value}'. {consequence}")
    return value


def isa():
    """The level MINDSPORE_OFFLOAD_ISA forces, or None to let the CPU decide."""
    return _one_of("MINDSPORE_OFFLOAD_ISA", ISAS, None,
                   "Unset it to choose the best level automatically.")


def num_threads():
    """The thread count MINDSPORE_OFFLOAD_NUM_THREADS asks for, or None for every CPU we may run on."""
    return _whole_number("MINDSPORE_OFFLOAD_NUM_THREADS", 1, MAX_NUM_THREADS,
                         "Unset it to use every CPU this process may run on.")


def _whole_number(name, low, high, consequence):
    value = _read(name)
    if value is None:
        return None
    digits = value.isascii() and value.isdigit()
    # Longer than the bound is out of range: int() itself refuses a string of over 4300 digits.
    number = int(value) if digits and len(value.lstrip("0")) <= len(str(high)) else None
    if number is None or not low <= number <= high:
        raise ValueError(f"{name} must be a whole number in [{low}, {high}], but got '{value}'. {consequence}")
    return number


def stream_min():
    """MINDSPORE_OFFLOAD_STREAM_MIN, or None for the threshold derived from the caches."""
    return _whole_number("MINDSPORE_OFFLOAD_STREAM_MIN", 0, SIZE_MAX,
                         "Unset it to derive the threshold from this CPU's caches.")


def prefetch_min():
    """MINDSPORE_OFFLOAD_PREFETCH_MIN, or None for the threshold derived from the caches."""
    return _whole_number("MINDSPORE_OFFLOAD_PREFETCH_MIN", 0, SIZE_MAX,
                         "Unset it to derive the threshold from this CPU's caches.")


def spin_us():
    """MINDSPORE_OFFLOAD_SPIN_US, or None for the pool's default spin bound."""
    return _whole_number("MINDSPORE_OFFLOAD_SPIN_US", 0, MAX_SPIN_US, "Unset it to use the default bound.")


LAUNCHER_VARIABLES = ("LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "MS_ROLE", "MS_WORKER_NUM")


def launcher():
    """The launchers' own variables that say how many ranks share this host (see _threads.py), as set."""
    return {name: os.environ[name] for name in LAUNCHER_VARIABLES if name in os.environ}


def shard_min_size():
    """MINDSPORE_OFFLOAD_SHARD_MIN_SIZE, or None for _sharding's default."""
    return _whole_number("MINDSPORE_OFFLOAD_SHARD_MIN_SIZE", 0, INT64_MAX, "Unset it to use the default size.")


def host_apply():
    """False when MINDSPORE_OFFLOAD_HOST_APPLY=0: keep the delta + assign_add path on the CPU backend."""
    return _one_of("MINDSPORE_OFFLOAD_HOST_APPLY", _SWITCH, "1",
                   "Unset it (or '1') to update parameters in host memory in the kernel's pass; '0' returns "
                   "the update for the graph to add.") == "1"


def aot_white_list():
    """MindSpore's MS_CUSTOM_AOT_WHITE_LIST (a folder), or None when unset or empty."""
    return _read("MS_CUSTOM_AOT_WHITE_LIST")


def aiturbo():
    """MindSpore's AITURBO switch, True where MindSpore's save_checkpoint would hand off to aiturbo."""
    return os.environ.get("AITURBO") == "1"


def build_switch(name):
    """setup.py's MINDSPORE_OFFLOAD_NATIVE, _SANITIZE and _BENCH: True for "1"."""
    if name not in ("MINDSPORE_OFFLOAD_NATIVE", "MINDSPORE_OFFLOAD_SANITIZE", "MINDSPORE_OFFLOAD_BENCH"):
        raise ValueError(f"'{name}' is not a build switch of mindspore-offload.")
    return _one_of(name, _SWITCH, "0", "Unset it (or '0') for the default build.") == "1"
