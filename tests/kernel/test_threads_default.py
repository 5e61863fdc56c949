"""The default pool size is this rank's share of the host (mindspore_offload/_threads.py)."""
import os
import subprocess
import sys

import pytest

from mindspore_offload._threads import default_num_threads, local_rank_count


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


@pytest.mark.parametrize("environ, usable, online, threads", [
    ({}, 64, 64, 64),                                      # one process: every CPU it may use
    ({}, 8, 64, 8),                                        # one process under taskset: its mask
    ({"LOCAL_WORLD_SIZE": "8"}, 64, 64, 8),                # 8 unbound ranks: an eighth each
    ({"LOCAL_WORLD_SIZE": "8"}, 8, 64, 8),                 # msrun --bind_core: its own 8 CPUs, whole
    ({"LOCAL_WORLD_SIZE": "8"}, 16, 64, 2),                # a 16-CPU container shared by 8 ranks
    ({"LOCAL_WORLD_SIZE": "8"}, 4, 4, 1),                  # more ranks than CPUs: at least one
    ({"MS_ROLE": "MS_WORKER", "MS_WORKER_NUM": "2"}, 2, 2, 1),  # msrun with 2 workers on this machine
    ({}, 4096, 4096, 1024),                                # past the pool's bound (_env.MAX_NUM_THREADS)
    ({"LOCAL_WORLD_SIZE": "2"}, 4096, 4096, 1024),
])
def test_default_is_the_rank_share(environ, usable, online, threads):
    assert default_num_threads(environ, usable, online) == threads


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
