"""How many threads this process's kernel pool takes by default: its rank's share of the host.

With N data-parallel ranks on one host, a pool per rank that takes every CPU would run N x CPUs threads
on CPUs threads' worth of cores. The rule, in order:

1. MINDSPORE_OFFLOAD_NUM_THREADS, when set (checked in kernel.py), wins.
2. The local rank count comes from the launcher: torchrun's LOCAL_WORLD_SIZE, Open MPI's
   OMPI_COMM_WORLD_LOCAL_SIZE, MPICH's MPI_LOCALNRANKS; for msrun (MS_ROLE=MS_WORKER), MS_WORKER_NUM.
   msrun exports only the total worker count, which is the local count on one host and over-counts
   across hosts (fewer threads than the share: set MINDSPORE_OFFLOAD_NUM_THREADS there). None of these:
   one rank.
3. The CPUs this process may run on (its affinity mask, which msrun --bind_core, taskset, numactl or a
   container's cpuset narrow) are taken whole when the mask is already no larger than one rank's share
   of the CPUs online (someone bound each rank to its own CPUs), and divided by the local rank count
   otherwise (every rank sees the same CPUs).
4. At most _env.MAX_NUM_THREADS (1024), the bound MINDSPORE_OFFLOAD_NUM_THREADS has too.
"""
import os

from mindspore_offload import _env

_LOCAL_RANK_COUNTS = ("LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS")


def local_rank_count(environ):
    """How many ranks of this job share this host, from the launcher's environment (1 if none says)."""
    names = list(_LOCAL_RANK_COUNTS)
    if environ.get("MS_ROLE") == "MS_WORKER":
        names.append("MS_WORKER_NUM")
    for name in names:
        value = environ.get(name, "").strip()
        if value.isdigit() and int(value) >= 1:
            return int(value)
    return 1


def default_num_threads(environ=None, usable=None, online=None):
    """This rank's share of the CPUs (rules 2 and 3 above); arguments default to this process's."""
    environ = _env.launcher() if environ is None else environ
    usable = len(os.sched_getaffinity(0)) if usable is None else usable
    online = (os.cpu_count() or usable) if online is None else online
    ranks = local_rank_count(environ)
    share = usable if ranks <= 1 or usable <= max(1, online // ranks) else usable // ranks
    return min(max(1, share), _env.MAX_NUM_THREADS)
