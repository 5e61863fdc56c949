"""Launching a worker script of tests/workers under msrun (one place for the command, environment and logs).

msrun and the workers' Python come from the environment running pytest; the workers import this
checkout's mindspore_offload, and the helpers in tests/support as `support.<module>`.
"""
import glob
import os
import shutil
import socket
import subprocess
import sys

import pytest

import mindspore_offload
from support.paths import TESTS, WORKERS


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def msrun_env():
    env = dict(os.environ)
    venv_bin = os.path.dirname(sys.executable)  # msrun and the workers' python come from this environment
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(mindspore_offload.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, str(TESTS), env.get("PYTHONPATH")]))
    return env


def logs(log_dir):
    text = []
    for path in sorted(glob.glob(os.path.join(log_dir, "*.log"))):
        with open(path, errors="replace") as f:
            lines = [line for line in f if "WARNING" not in line and "[INFO]" not in line]
        text.append(f"--- {os.path.basename(path)}\n" + "".join(lines[-30:]))
    return "\n".join(text)


def launch(script, args, workers, out, timeout, env=None, log_dir=None, missing=pytest.skip):
    """Runs tests/workers/<script> on `workers` local msrun workers in `out`; returns (process, log folder).

    A missing msrun calls `missing` (skip, or fail where msrun must be there); running past `timeout`
    seconds fails the test with the workers' logs."""
    env = env or msrun_env()
    msrun = shutil.which("msrun", path=env["PATH"])
    if msrun is None:
        missing(f"msrun is not installed next to {sys.executable}")
    log_dir = log_dir or out / "logs"
    command = [msrun, f"--worker_num={workers}", f"--local_worker_num={workers}", f"--master_port={free_port()}",
               "--join=True", f"--log_dir={log_dir}", str(WORKERS / script), *map(str, args)]
    try:
        proc = subprocess.run(command, cwd=out, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"msrun ({script}, {workers} workers) did not finish in {timeout} s\n{logs(log_dir)}")
    return proc, log_dir


def launch_ok(script, args, workers, out, timeout):
    """launch(), then the run must have succeeded and every rank written its `finished_rank<r>` file."""
    proc, log_dir = launch(script, args, workers, out, timeout)
    assert proc.returncode == 0, f"msrun failed ({proc.returncode})\n{proc.stdout[-3000:]}\n{logs(log_dir)}"
    for rank in range(workers):
        assert (out / f"finished_rank{rank}").exists(), f"rank {rank} did not finish\n{logs(log_dir)}"
    return out


def launch_hosts(script, args, hosts, workers_per_host, out, timeout):
    """Runs tests/workers/<script> as `hosts` msrun "hosts" on this machine (--node_rank 0..hosts-1, each with
    --local_worker_num=workers_per_host, all joining the scheduler at 127.0.0.1); returns the log folders.

    Every msrun starts a scheduler; on one machine all but the first fail on the taken port, which
    the workers do not notice (a real second host has its own port). Fails the test on a timeout."""
    env = msrun_env()
    msrun = shutil.which("msrun", path=env["PATH"])
    if msrun is None:
        pytest.skip(f"msrun is not installed next to {sys.executable}")
    port = free_port()
    procs, log_dirs = [], []
    for node in range(hosts):
        log_dir = out / f"logs_host{node}"
        log_dirs.append(log_dir)
        command = [msrun, f"--worker_num={hosts * workers_per_host}", f"--local_worker_num={workers_per_host}",
                   f"--node_rank={node}", "--master_addr=127.0.0.1", f"--master_port={port}", "--join=True",
                   f"--log_dir={log_dir}", str(WORKERS / script), *map(str, args)]
        procs.append(subprocess.Popen(command, cwd=out, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        for proc in procs:
            proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
        pytest.fail(f"msrun ({script}, {hosts} hosts) did not finish in {timeout} s\n"
                    + "\n".join(logs(d) for d in log_dirs))
    return log_dirs
