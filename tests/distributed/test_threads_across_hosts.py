"""The pool's default thread count under msrun is the share of the ranks on this host, not of the total
over all hosts (mindspore_offload/_threads.py): two msrun "hosts" on this machine (--node_rank 0 and 1,
one worker each, tests/workers/threads_worker.py), against one host with both workers."""
import json
import os

import pytest

pytest.importorskip("mindspore")

from mindspore_offload._threads import default_num_threads  # noqa: E402
from support.msrun_launch import launch, launch_hosts, logs  # noqa: E402


def share(local_ranks):
    """What a rank of `local_ranks` on this machine should take, by _threads.py's rule."""
    return default_num_threads({"LOCAL_WORLD_SIZE": str(local_ranks)}, len(os.sched_getaffinity(0)), os.cpu_count())


def read(out, ranks, log_text):
    found = {}
    for rank in range(ranks):
        path = out / f"threads_rank{rank}.json"
        assert path.exists(), f"rank {rank} wrote nothing\n{log_text()}"
        found[rank] = json.loads(path.read_text())
    return found


@pytest.mark.slow
def test_one_worker_a_host_takes_the_host(tmp_path):
    if share(1) == share(2):
        pytest.skip("this machine gives one rank and two ranks the same share (one CPU)")
    log_dirs = launch_hosts("threads_worker.py", [tmp_path], hosts=2, workers_per_host=1, out=tmp_path, timeout=180)
    found = read(tmp_path, 2, lambda: "\n".join(logs(d) for d in log_dirs))
    for rank, result in found.items():
        assert result["worker_num"] == 2
        assert result["threads"] == share(1), f"rank {rank}: {result}; MS_WORKER_NUM's share would be {share(2)}"


@pytest.mark.slow
def test_two_workers_on_one_host_share_it(tmp_path):
    proc, log_dir = launch("threads_worker.py", [tmp_path], 2, tmp_path, timeout=180)
    assert proc.returncode == 0, f"msrun failed ({proc.returncode})\n{proc.stdout[-3000:]}\n{logs(log_dir)}"
    for rank, result in read(tmp_path, 2, lambda: logs(log_dir)).items():
        assert result["threads"] == share(2), f"rank {rank}: {result}"
