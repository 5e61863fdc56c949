"""What an msrun worker of tests/workers reads and writes in its run's folder: one file per case and rank,
and waiting for the other ranks' files."""
import os
import time

import numpy as np

import mindspore as ms

from mindspore_offload.checkpoint import load_param_into_net_checked, merge_sharded_checkpoints


class RankFiles:
    def __init__(self, out, rank):
        self.out, self.rank = out, rank

    def path(self, name):
        return os.path.join(self.out, name)

    def save(self, case, values):
        np.savez(self.path(f"{case}_rank{self.rank}.npz"), **values)

    def wait_for(self, names, timeout=120):
        deadline = time.monotonic() + timeout
        while not all(os.path.exists(self.path(name)) for name in names):
            if time.monotonic() > deadline:
                raise TimeoutError(f"rank {self.rank}: waited {timeout} s for {names}")
            time.sleep(0.05)

    def save_checkpoint(self, cell, case):
        """This rank's checkpoint of `cell` as <case>_rank<r>.ckpt, then <case>_rank<r>.done, for the
        other ranks to wait for."""
        ms.save_checkpoint(cell, self.path(f"{case}_rank{self.rank}.ckpt"))
        open(self.path(f"{case}_rank{self.rank}.done"), "w").close()

    def merge_checkpoints(self, case, ranks):
        """Waits for every rank's <case> checkpoint; rank 0 merges them into merged.ckpt, under another
        name first so that no rank reads it half written. Returns its path; the caller waits for it."""
        self.wait_for([f"{case}_rank{r}.done" for r in range(ranks)])
        merged = self.path("merged.ckpt")
        if self.rank == 0:
            merge_sharded_checkpoints([self.path(f"{case}_rank{r}.ckpt") for r in range(ranks)],
                                      out=self.path("merged.tmp.ckpt"))
            os.replace(self.path("merged.tmp.ckpt"), merged)
        return merged

    def save_refusal(self, case, cell, checkpoint, state_of):
        """Loads `checkpoint` into `cell` and saves the error message (or "loaded") and whether every
        parameter of the cell, as `state_of` reads them, stayed as it was."""
        before = state_of(cell)
        try:
            load_param_into_net_checked(cell, checkpoint)
            message = "loaded"
        except ValueError as error:
            message = str(error)
        unchanged = all(np.array_equal(before[k], v) for k, v in state_of(cell).items())
        self.save(case, {"message": np.array(message), "unchanged": np.array(unchanged)})
