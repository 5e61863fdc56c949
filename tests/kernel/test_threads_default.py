"""The default pool size is this rank's share of the host (mindspore_offload/_threads.py)."""
import os
import subprocess
import sys

import pytest

from mindspore_offload._threads import default_num_threads, local_rank_count, msrun_local_workers


@pytest.mark.parametrize("environ, ranks", [
    ({}, 1),
    ({"LOCAL_WORLD_SIZE": "4"}, 4),
    ({"OMPI_COMM_WORLD_LOCAL_SIZE": "3"}, 3),
    ({"MPI_LOCALNRANKS": "2"}, 2),
    ({"MS_ROLE": "MS_WORKER", "MS_WORKER_NUM": "8"}, 8),
    ({"MS_ROLE": "MS_SCHED", "MS_WORKER_NUM": "8"}, 1),  # msrun's scheduler runs no optimizer
    ({"LOCAL_WORLD_SIZE": "0"}, 1),
    ({"LOCAL_WORLD_SIZE": "two"}, 1),
])
def test_local_rank_count_from_the_launcher(environ, ranks):
    assert local_rank_count(environ) == ranks


MSRUN = ("/venv/bin/python", "/venv/bin/msrun")
WORKER = {"MS_ROLE": "MS_WORKER", "MS_WORKER_NUM": "16"}  # 16 workers over all hosts


@pytest.mark.parametrize("command, local", [
    ((*MSRUN, "--worker_num=16", "--local_worker_num=8", "--node_rank=1", "train.py"), 8),
    ((*MSRUN, "--worker_num", "16", "--local_worker_num", "1", "train.py"), 1),
    (("/venv/bin/python", "-m", "mindspore.parallel.cluster.run", "--local_worker_num=4", "t.py"), 4),
    ((*MSRUN, "--worker_num=16", "train.py"), None),               # not given: MS_WORKER_NUM decides
    ((*MSRUN, "--local_worker_num=0", "train.py"), None),
    ((*MSRUN, "--local_worker_num=four", "train.py"), None),
    ((*MSRUN, "--local_worker_num"), None),
    (("/usr/bin/python", "train.py", "--local_worker_num=4"), None),  # not msrun
    ((), None),                                                    # parent's command line unreadable
])
def test_msrun_local_workers_from_its_command_line(command, local):
    assert msrun_local_workers(command) == local


@pytest.mark.parametrize("environ, command, ranks", [
    (WORKER, (*MSRUN, "--worker_num=16", "--local_worker_num=8", "--node_rank=1", "t.py"), 8),  # 2 hosts of 8
    (WORKER, (*MSRUN, "--worker_num=16", "--local_worker_num=1", "--node_rank=3", "t.py"), 1),  # 1 rank a host
    (WORKER, ("/usr/bin/bash", "run.sh"), 16),                    # not started by msrun: the total, as before
    ({"MS_ROLE": "MS_SCHED", "MS_WORKER_NUM": "16"}, (*MSRUN, "--local_worker_num=8"), 1),
    ({**WORKER, "LOCAL_WORLD_SIZE": "2"}, (*MSRUN, "--local_worker_num=8"), 2),  # a launcher's own count first
])
def test_an_msrun_worker_counts_the_ranks_on_its_host(environ, command, ranks):
    assert local_rank_count(environ, command) == ranks
    assert default_num_threads(environ, 64, 64, command) == 64 // ranks


@pytest.mark.parametrize("environ, usable, online, threads", [
    ({}, 64, 64, 64),                                      # one process: every CPU it may use
    ({}, 8, 64, 8),                                        # one process under taskset: its mask
    ({"LOCAL_WORLD_SIZE": "8"}, 64, 64, 8),                # 8 unbound ranks: an eighth each
    ({"LOCAL_WORLD_SIZE": "8"}, 8, 64, 8),                 # msrun --bind_core: its own 8 CPUs, whole
    ({"LOCAL_WORLD_SIZE": "8"}, 16, 64, 2),                # a 16-CPU container shared by 8 ranks
    ({"LOCAL_WORLD_SIZE": "8"}, 4, 4, 1),                  # more ranks than CPUs: at least one
    ({"MS_ROLE": "MS_WORKER", "MS_WORKER_NUM": "2"}, 2, 2, 1),  # msrun's total where its command line says nothing
    ({}, 4096, 4096, 1024),                                # past the pool's bound (_env.MAX_NUM_THREADS)
    ({"LOCAL_WORLD_SIZE": "2"}, 4096, 4096, 1024),
])
def test_default_is_the_rank_share(environ, usable, online, threads):
    assert default_num_threads(environ, usable, online, ()) == threads


def run_python(code, **env):
    full = {k: v for k, v in os.environ.items() if k not in ("MINDSPORE_OFFLOAD_NUM_THREADS", "LOCAL_WORLD_SIZE")}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, check=True).stdout


def test_import_applies_the_rank_share_and_the_override_wins():
    code = "from mindspore_offload import kernel; print(kernel.get_num_threads())"
    usable = len(os.sched_getaffinity(0))
    online = os.cpu_count()
    ranks = usable + 1  # more ranks than usable CPUs: the share is one thread
    expected = default_num_threads({"LOCAL_WORLD_SIZE": str(ranks)}, usable, online)
    assert int(run_python(code, LOCAL_WORLD_SIZE=str(ranks))) == expected
    assert int(run_python(code, LOCAL_WORLD_SIZE=str(ranks), MINDSPORE_OFFLOAD_NUM_THREADS="3")) == 3
