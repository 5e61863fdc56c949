"""How many threads this process's kernel pool takes by default: its rank's share of the host.

With N data-parallel ranks on one host, a pool per rank that takes every CPU would run N x CPUs threads
on CPUs threads' worth of cores. The rule, in order:

1. MINDSPORE_OFFLOAD_NUM_THREADS, when set (checked in kernel.py), wins.
2. The local rank count comes from the launcher: torchrun's LOCAL_WORLD_SIZE, Open MPI's
   OMPI_COMM_WORLD_LOCAL_SIZE, MPICH's MPI_LOCALNRANKS. msrun (MS_ROLE=MS_WORKER) exports only the total
   worker count over all hosts (MS_WORKER_NUM, with RANK_ID and DEVICE_ID, the local index), so for its
   workers the count is the --local_worker_num on the command line of the msrun process that started
   this one (its parent); MS_WORKER_NUM only where that command line cannot be read or does not say
   (msrun then runs every worker on this host). MindSpore's own get_local_rank_size() would need init()
   first, after the pool is sized at import, and counts the ranks by host name. None of these: one rank.
3. The CPUs this process may run on (its affinity mask, which msrun --bind_core, taskset, numactl or a
   container's cpuset narrow) are taken whole when the mask is already no larger than one rank's share
   of the CPUs online (someone bound each rank to its own CPUs), and divided by the local rank count
   otherwise (every rank sees the same CPUs).
4. At most _env.MAX_NUM_THREADS (1024), the bound MINDSPORE_OFFLOAD_NUM_THREADS has too.
"""
import os

from mindspore_offload import _env

_LOCAL_RANK_COUNTS = ("LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS")


def _count(value):
    value = value.strip()
    return int(value) if value.isascii() and value.isdigit() and int(value) >= 1 else None


def parent_command():
    """The arguments of the process that started this one (msrun's, for its workers); () where unreadable."""
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            return tuple(a.decode(errors="replace") for a in f.read().split(b"\0") if a)
    except OSError:
        return ()


def msrun_local_workers(command):
    """The --local_worker_num of an msrun command line (msrun's own options come before its script), or None."""
    if not any(os.path.basename(a) == "msrun" or a == "mindspore.parallel.cluster.run" for a in command[:3]):
        return None
    for i, arg in enumerate(command):
        if arg.startswith("--local_worker_num="):
            return _count(arg.partition("=")[2])
        if arg == "--local_worker_num" and i + 1 < len(command):
            return _count(command[i + 1])
    return None


def local_rank_count(environ, command=()):
    """How many ranks of this job share this host, from the launcher's environment and, for an msrun worker,
    msrun's command line (1 if none says)."""
    for name in _LOCAL_RANK_COUNTS:
        if _count(environ.get(name, "")) is not None:
            return _count(environ[name])
    if environ.get("MS_ROLE") == "MS_WORKER":
        local = msrun_local_workers(command)
        if local is not None:
            return local
        if _count(environ.get("MS_WORKER_NUM", "")) is not None:
            return _count(environ["MS_WORKER_NUM"])
    return 1


def default_num_threads(environ=None, usable=None, online=None, command=None):
    """This rank's share of the CPUs (rules 2 and 3 above); arguments default to this process's."""
    environ = _env.launcher() if environ is None else environ
    usable = len(os.sched_getaffinity(0)) if usable is None else usable
    online = (os.cpu_count() or usable) if online is None else online
    if command is None:
        command = parent_command() if environ.get("MS_ROLE") == "MS_WORKER" else ()
    ranks = local_rank_count(environ, command)
    share = usable if ranks <= 1 or usable <= max(1, online // ranks) else usable // ranks
    return min(max(1, share), _env.MAX_NUM_THREADS)
