"""16-bit parameters with float32 masters beside float32 ones: a layout of parameters, 16-bit-representable
values and gradients for it, the optimizer settings the tests run, and the bits to compare."""
import numpy as np

import mindspore as ms
from mindspore import Parameter, Tensor, nn

from mindspore_offload import AdamOffload, AdamWeightDecayOffload
from support.nets import ShrinkingWeightDecay

STEPS = 20
# name -> (ms dtype, shape); the float32 one takes the float32 path beside the 16-bit ones
LAYOUT = {"w16": (ms.float16, (7, 5)), "wbf": (ms.bfloat16, (33,)), "w32": (ms.float32, (17,)),
          "gamma16": (ms.float16, (9,))}


def bits(x):
    """The raw bits of a Tensor (bfloat16 included) as unsigned integers."""
    a = x.asnumpy()
    return a.view(np.uint16 if a.dtype.itemsize == 2 else np.uint32)


def rne(master, dtype):
    """float32 master -> 16-bit bits, round to nearest even (integer code for bfloat16)."""
    if dtype == ms.float16:
        return master.astype(np.float16).view(np.uint16)
    b = master.view(np.uint32).astype(np.uint64)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)


class Holder(nn.Cell):
    def __init__(self, values, float32_everywhere):
        super().__init__()
        self.params = [Parameter(as_tensor(k, v, float32_everywhere), name=k) for k, v in values.items()]
        for p in self.params:
            setattr(self, p.name, p)


def initial_values(seed=0, layout=LAYOUT):
    """16-bit-representable starting values, so both runs start from the same numbers."""
    rng = np.random.default_rng(seed)
    values = {}
    for name, (dtype, shape) in layout.items():
        v = rng.standard_normal(shape).astype(np.float32)
        if dtype == ms.float16:
            v = v.astype(np.float16).astype(np.float32)
        elif dtype == ms.bfloat16:
            v = (v.view(np.uint32) & 0xFFFF0000).view(np.float32)
        values[name] = v
    return values


def gradient_sequence(seed=1, layout=LAYOUT):
    rng = np.random.default_rng(seed)
    steps = []
    for _ in range(STEPS):
        step = {}
        for name, (dtype, shape) in layout.items():
            g = (rng.standard_normal(shape) * 0.5).astype(np.float32)
            if dtype == ms.float16:
                g = g.astype(np.float16)
            elif dtype == ms.bfloat16:
                g = (g.view(np.uint32) & 0xFFFF0000).view(np.float32)  # a bfloat16 value
            step[name] = g
        steps.append(step)
    return steps


def _arguments(holder, case):
    """(params, learning_rate, weight_decay) for a CASES or ADAMW_CASES row: the holder's parameters or
    two groups of them, and a fixed rate and decay or, for a "dynamic" row, a learning rate per step and
    a weight decay computed from the step."""
    params = holder.params
    if case["groups"]:
        first = [p for p in params if p.name in ("w16", "w32")]
        rest = [p for p in params if p.name not in ("w16", "w32")]
        params = [{"params": first, "weight_decay": 0.05, "lr": 0.02}, {"params": rest, "lr": 0.005},
                  {"order_params": holder.params}]
    weight_decay, learning_rate = case["weight_decay"], 0.01
    if case.get("dynamic"):
        weight_decay, learning_rate = ShrinkingWeightDecay(), [0.01 / (1 + 0.1 * t) for t in range(STEPS)]
    return params, learning_rate, weight_decay


def make_optimizer(holder, case):
    params, learning_rate, weight_decay = _arguments(holder, case)
    return AdamOffload(params, learning_rate=learning_rate, use_nesterov=case["nesterov"], weight_decay=weight_decay,
                       loss_scale=case["loss_scale"])


def make_adamw_optimizer(holder, case):
    """AdamWeightDecayOffload for an ADAMW_CASES row (its "gamma16" parameter is spared the decay when
    ungrouped, by nn.AdamWeightDecay's name filter)."""
    params, learning_rate, weight_decay = _arguments(holder, case)
    return AdamWeightDecayOffload(params, learning_rate=learning_rate, weight_decay=weight_decay)


ADAMW_CASES = {
    "plain": dict(groups=False, weight_decay=0.0),
    "decay": dict(groups=False, weight_decay=0.05),
    "groups": dict(groups=True, weight_decay=0.0),
    "dynamic lr and decay": dict(groups=False, weight_decay=None, dynamic=True),
}


def as_tensor(name, g, float32_everywhere):
    dtype = ms.float32 if float32_everywhere else LAYOUT[name][0]
    return Tensor(g.astype(np.float32), ms.float32).astype(dtype) if dtype == ms.bfloat16 else Tensor(g, dtype)


CASES = {
    "plain": dict(groups=False, nesterov=False, weight_decay=0.0, loss_scale=1.0),
    "nesterov+decay+scale": dict(groups=False, nesterov=True, weight_decay=0.01, loss_scale=8.0),
    "groups": dict(groups=True, nesterov=False, weight_decay=0.0, loss_scale=1.0),
    "groups+nesterov+scale": dict(groups=True, nesterov=True, weight_decay=0.0, loss_scale=4.0),
    "dynamic lr and decay": dict(groups=False, nesterov=False, weight_decay=None, loss_scale=2.0, dynamic=True),
}


def assert_masters_follow(reference, net16, opt32, opt16):
    """The 16-bit run against the float32 one, bit for bit: each master equals the float32 parameter,
    each 16-bit parameter is that rounded to nearest even, float32 parameters and every moment equal."""
    masters = {p.name[len("master."):]: p for p in opt16.get_parameters() if p.name.startswith("master.")}
    for p32, p16 in zip(reference.params, net16.params):
        want = p32.asnumpy()
        if p16.dtype == ms.float32:
            np.testing.assert_array_equal(bits(p16), want.view(np.uint32), err_msg=p16.name)
        else:
            np.testing.assert_array_equal(bits(masters[p16.name]), want.view(np.uint32), err_msg=p16.name)
            np.testing.assert_array_equal(bits(p16), rne(want, p16.dtype), err_msg=p16.name)
    for a, b in zip(list(opt32.moment1) + list(opt32.moment2), list(opt16.moment1) + list(opt16.moment2)):
        assert b.dtype == ms.float32 and a.name == b.name
        np.testing.assert_array_equal(bits(a), bits(b), err_msg=a.name)
    return masters


def check_trajectory(make_optimizer, case, layout):
    """The same gradients through `make_optimizer(holder, case)` on float32 parameters and on `layout`'s
    16-bit ones: the masters follow (assert_masters_follow), one per 16-bit parameter, and the 16-bit
    parameters moved. Returns the 16-bit run's optimizer."""
    values = initial_values(layout=layout)
    reference, net16 = Holder(values, True), Holder(values, False)
    opt32, opt16 = make_optimizer(reference, case), make_optimizer(net16, case)
    for step in gradient_sequence(layout=layout):
        opt32(tuple(as_tensor(k, step[k], True) for k in layout))
        opt16(tuple(as_tensor(k, step[k], False) for k in layout))
    masters = assert_masters_follow(reference, net16, opt32, opt16)
    assert sorted(masters) == sorted(k for k, v in layout.items() if v[0] != ms.float32)
    assert not np.array_equal(bits(net16.params[0]), rne(values["w16"], ms.float16))  # it moved
    return opt16
