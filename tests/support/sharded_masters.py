"""The nets, data and optimizer settings of the 16-bit msrun runs, shared by tests/workers/shard16_worker.py
(which trains them under msrun) and tests/distributed/test_sharding_masters.py (which replays them in one
process).

Two nets. "net": a float16 network MindSpore's CPU backend computes. "fed": bfloat16, float16 and
float32 parameters whose per-rank gradients are made here (the CPU backend computes no bfloat16 MatMul).
"""
import numpy as np

import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.np_dtype import bfloat16

from mindspore_offload import AdamOffload

STEPS = 6
HALF = 3
SHARD_MIN_SIZE = 4  # the whole-path parameters below: tilt (2), scale (1), d16 (3), g32 (3)
DTYPES = {"float16": ms.float16, "bfloat16": ms.bfloat16, "float32": ms.float32}
# The fed net: name -> (dtype, shape). Sizes with no leftover (1000), leftovers inside the last slice
# (1003, 77, 70) and leftovers across two or three slices (7).
FED = {"a16": ("bfloat16", (40, 25)), "b16": ("bfloat16", (1003,)), "c16": ("bfloat16", (7,)),
       "d16": ("bfloat16", (3,)), "e16": ("float16", (77,)), "f32": ("float32", (70,)), "g32": ("float32", (3,))}


def raw(value):
    """A tensor's value as NumPy, 16-bit types as their uint16 bits (np.savez cannot store bfloat16)."""
    a = value.asnumpy() if hasattr(value, "asnumpy") else np.asarray(value)
    return a.view(np.uint16) if a.dtype.itemsize == 2 else a.copy()


def from_raw(a, dtype):
    """The inverse of raw(): a Tensor of ``dtype`` (a name in DTYPES)."""
    if dtype == "float32":
        return Tensor(a.astype(np.float32))
    return Tensor(a.view(np.float16 if dtype == "float16" else bfloat16))


class Net16(nn.Cell):
    """float16 parameters of 231, 33, 1023, 31, 217, 7 (sliced), 2 and 1 (whole) elements."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Dense(7, 33)
        self.fc2 = nn.Dense(33, 31)
        self.fc3 = nn.Dense(31, 7)
        self.scale = Parameter(Tensor(np.ones(1, np.float32)), name="scale")
        self.tilt = Parameter(Tensor(np.ones(2, np.float32)), name="tilt")
        self.tanh = nn.Tanh()
        rng = np.random.default_rng(0)
        for param in self.trainable_params():
            param.set_dtype(ms.float16)
            param.set_data(Tensor((0.3 * rng.standard_normal(param.shape)).astype(np.float16)))

    def construct(self, x):
        h = self.tanh(self.fc2(self.tanh(self.fc1(x))))
        return ops.concat((self.fc3(h) * self.scale, h[:, :2] * self.tilt), axis=1)


class Loss(nn.Cell):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def construct(self, x, y):
        return ops.reduce_mean(ops.square(self.net(x).astype(ms.float32) - y))


class Holder(nn.Cell):
    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(5)
        self.params = []
        for name, (dtype, shape) in FED.items():
            value = rng.standard_normal(shape).astype(np.float32)
            param = Parameter(Tensor(value).astype(DTYPES[dtype]), name=name)
            setattr(self, name, param)
            self.params.append(param)


def optimizer_for(params, first, net, sharded, nesterov):
    """Groups (the first with its own rate and decay), a default decay, Nesterov or not; the fed net adds
    a loss scale. The same call builds the test's single-process replay."""
    groups = [{"params": first, "lr": 0.02, "weight_decay": 0.01},
              {"params": [p for p in params if all(p is not q for q in first)], "lr": 0.005},
              {"order_params": params}]
    kwargs = {"shard_state": True} if sharded else {}
    return AdamOffload(groups, learning_rate=0.01, weight_decay=0.001, use_nesterov=nesterov,
                       loss_scale=2.0 if net == "fed" else 1.0, **kwargs)


def fed_gradients(rank, step):
    """This rank's gradients at ``step``, as raw values (16-bit ones representable in their dtype)."""
    rng = np.random.default_rng(1000 * rank + step)
    return {name: (0.5 * rng.standard_normal(shape)).astype(np.float32) for name, (_, shape) in FED.items()}


def written_value(name, shape, dtype):
    """What a user writes into parameter ``name`` after HALF steps (pretrained weights, say): the same on
    every rank, representable in ``dtype`` (a MindSpore dtype), as float32 NumPy values."""
    rng = np.random.default_rng(sum(name.encode()))
    value = (0.4 * rng.standard_normal(shape)).astype(np.float32)
    if dtype == ms.float16:
        return value.astype(np.float16).astype(np.float32)
    if dtype == ms.bfloat16:
        return (value.view(np.uint32) & 0xFFFF0000).view(np.float32)
    return value


def overwrite(params, float32_everywhere=False):
    """set_data on every parameter with written_value; ``float32_everywhere``: float32 parameters standing
    in for 16-bit ones get the same values widened (the test's float32 replay)."""
    for param in params:
        dtype = param.dtype
        if float32_everywhere:
            dtype = DTYPES[FED[param.name][0]] if param.name in FED else ms.float16
        value = Tensor(written_value(param.name, param.shape, dtype))
        param.set_data(value if param.dtype == ms.float32 else value.astype(param.dtype))
