"""One msrun worker for tests/distributed/test_threads_across_hosts.py: writes the thread count its kernel
pool took at import (mindspore_offload/_threads.py's rank share) to OUT/threads_rank<r>.json.

Usage: msrun --worker_num=W --local_worker_num=L [--node_rank=N --master_addr=...] ... threads_worker.py OUT
"""
import json
import os
import sys

from mindspore.communication import get_rank, init

from mindspore_offload import kernel

threads = kernel.get_num_threads()  # sized at import, before init(), as in a training script
init()  # the scheduler waits for every worker to register
out = os.path.join(sys.argv[1], f"threads_rank{get_rank()}.json")
with open(out, "w") as f:
    json.dump({"threads": threads, "worker_num": int(os.environ["MS_WORKER_NUM"])}, f)
