"""A sha256 of 20-step trajectories of AdamOffload for every step kind one process can run ("delta",
"host", "master", "master_host"; the sliced kinds need msrun), in GRAPH_MODE and PyNative, with groups,
Nesterov, weight decay and a loss scale. Run it before and after a change that must keep the bits:

    python tests/support/trajectory_digest.py            # prints one digest per mode and path, then all
"""
import hashlib
import os
import sys

import numpy as np


def trajectory(mode, host_apply):
    import mindspore as ms
    from mindspore import Parameter, Tensor

    os.environ["MINDSPORE_OFFLOAD_HOST_APPLY"] = host_apply
    from mindspore_offload import AdamOffload

    ms.set_context(mode=mode)
    rng = np.random.default_rng(3)
    dtypes = {"w32": ms.float32, "b32": ms.float32, "w16": ms.float16}
    if host_apply == "1":  # the CPU backend assigns no bfloat16 in the graph
        dtypes["wbf"] = ms.bfloat16
    params = [Parameter(Tensor(rng.standard_normal((5, 7)).astype(np.float32)).astype(dtype), name=name)
              for name, dtype in dtypes.items()]
    groups = [{"params": params[:2], "lr": 0.02, "weight_decay": 0.01}, {"params": params[2:]},
              {"order_params": params}]
    opt = AdamOffload(groups, learning_rate=0.01, weight_decay=0.001, use_nesterov=True, loss_scale=4.0)
    digest = hashlib.sha256()
    for _ in range(20):
        grads = tuple(Tensor((rng.standard_normal((5, 7)) * 0.3).astype(np.float32)).astype(p.dtype) for p in params)
        opt(grads)
    for p in list(params) + list(opt.get_parameters()):
        a = p.asnumpy()
        digest.update(p.name.encode() + (a.view(np.uint16) if a.dtype.itemsize == 2 else a).tobytes())
    return opt.step_kinds, digest.hexdigest()


def main():
    import mindspore as ms

    everything = hashlib.sha256()
    for mode, name in ((ms.GRAPH_MODE, "graph"), (ms.PYNATIVE_MODE, "pynative")):
        for host_apply in ("1", "0"):
            kinds, digest = trajectory(mode, host_apply)
            print(f"{name} HOST_APPLY={host_apply} {sorted(set(kinds))} {digest}")
            everything.update(digest.encode())
    print(f"all {everything.hexdigest()}")


if __name__ == "__main__":
    sys.exit(main())
