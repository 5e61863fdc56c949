"""Kills checkpoint saves part-way and reports what each kill left behind (for tests/checkpoint/test_safe_save.py).

Usage: python tests/workers/ckpt_kill_saver.py DIR MEGABYTES KILLS

For each saver ('ours' = mindspore_offload.save_checkpoint, 'mindspore' = mindspore.save_checkpoint):
first a complete save is timed; then, KILLS times, a good 'old' checkpoint is put in place, a forked
child starts saving the 'new' one over it and is SIGKILLed after a delay, the delays spread evenly over
the timed save. After each kill the file is loaded here and classified as 'old', 'new', 'missing' or
'mixed' (anything else: unreadable, mixed values, wrong names). One JSON line per saver on stdout.

Forking a process that has MindSpore loaded is what MindSpore's own async_save="process" does; the data
are plain host tensors, so the child needs no device runtime.
"""
import json
import os
import shutil
import signal
import sys
import time

import numpy as np

import mindspore as ms
from mindspore import Tensor

from mindspore_offload.safe_save import save_checkpoint as safe_save

PARTS = 8  # the checkpoint is PARTS float32 tensors, like a model's parameters and moments


def make_params(megabytes, version):
    size = megabytes * (1 << 20) // 4 // PARTS
    # Distinct values per tensor and per version, so a file stitched from both is caught.
    return [{"name": f"p{i}", "data": Tensor(np.full(size, version * 10 + i, np.float32))} for i in range(PARTS)] + \
           [{"name": "global_step", "data": Tensor(np.array([version], np.int32))}]


def classify(path, expected):
    if not os.path.exists(path):
        return "missing"
    try:
        loaded = ms.load_checkpoint(path)
    except Exception:  # noqa: BLE001  (a torn file may fail in many ways; all are 'mixed')
        return "mixed"
    for version in ("old", "new"):
        want = expected[version]
        if loaded.keys() == want.keys() and all(
                np.array_equal(loaded[name].asnumpy(), want[name]) for name in want):
            return version
    return "mixed"


def run_child(save, params, path):
    pid = os.fork()
    if pid == 0:  # the child saves and leaves without running the parent's cleanup
        try:
            save(params, path)
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(1)
    return pid


def timed_save(save, params, path):
    start = time.perf_counter()
    pid = run_child(save, params, path)
    _, status = os.waitpid(pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"a complete save failed in the child (status {status})")
    return elapsed


def main():
    folder, megabytes, kills = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ms.set_context(device_target="CPU")
    old, new = make_params(megabytes, 1), make_params(megabytes, 2)
    expected = {"old": {p["name"]: p["data"].asnumpy() for p in old},
                "new": {p["name"]: p["data"].asnumpy() for p in new}}
    savers = {"ours": safe_save, "mindspore": ms.save_checkpoint}
    for name, save in savers.items():
        path = os.path.join(folder, f"{name}.ckpt")
        pristine = os.path.join(folder, f"{name}.pristine")
        safe_save(old, pristine + ".ckpt")
        os.replace(pristine + ".ckpt", pristine)
        shutil.copyfile(pristine, path)
        save_seconds = timed_save(save, new, path)
        states, leftovers = [], []
        for k in range(kills):
            shutil.copyfile(pristine, path + ".reset")  # a good old checkpoint before every kill
            os.replace(path + ".reset", path)
            delay = save_seconds * (k + 0.5) / kills
            pid = run_child(save, new, path)
            time.sleep(delay)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            states.append(classify(path, expected))
            leftovers.append(sorted(n for n in os.listdir(folder)
                                    if n.startswith((f".{name}.", f"{name}.")) and n.endswith((".tmp", ".ckpt"))
                                    and n != os.path.basename(path)))
        # After the last kill, one more save must clean up what the kill left.
        if name == "ours":
            safe_save(new, path)
        left_after = sorted(n for n in os.listdir(folder) if n.startswith(f".{name}.ckpt"))
        print(json.dumps({"saver": name, "megabytes": megabytes, "save_seconds": save_seconds,
                          "states": states, "leftovers": leftovers, "left_after_next_save": left_after,
                          "final": classify(path, expected)}), flush=True)
        for n in os.listdir(folder):  # leave the folder empty for the next saver
            os.remove(os.path.join(folder, n))


if __name__ == "__main__":
    main()
