"""A write to a 16-bit parameter after the optimizer was built is never undone.

The host pass keeps a float32 master for each float16/bfloat16 parameter. A user who writes the
parameter (ms.load_param_into_net, ms.load_checkpoint, Parameter.set_data, ops.assign in their own
graph) expects the next step to continue from the written value, as nn.Adam and a float32 AdamOffload
do. Each way of writing, in both modes, on the host-apply path and on the device path
(MINDSPORE_OFFLOAD_HOST_APPLY=0), is compared bit for bit with a float32 AdamOffload fed the same
(widened) gradients whose parameters were written with the same values widened: the masters must equal
its parameters, the 16-bit parameters its parameters rounded, the moments its moments.

The written values differ from the parameter's value in every element: an element rewritten with the
value it already had is no write the pass can see, and keeps its master (tests/masters/test_kernel.py).
"""
import numpy as np
import pytest

import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops

from mindspore_offload import AdamOffload
from support.masters import Holder, as_tensor, assert_masters_follow, bits, gradient_sequence, initial_values, rne

MODES = pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE], ids=["graph", "pynative"])
LAYOUT = {"w16": (ms.float16, (7, 5)), "wbf": (ms.bfloat16, (33,)), "w32": (ms.float32, (17,)),
          "gamma16": (ms.float16, (9,))}
BEFORE, AFTER = 3, 4  # steps before the write and after it


def written_values(holder, layout, seed=7):
    """New 16-bit-representable values, each element different from the parameter's value now."""
    rng = np.random.default_rng(seed)
    values = {}
    for param in holder.params:
        dtype = layout[param.name][0]
        now = param.asnumpy().astype(np.float32)
        new = (rng.standard_normal(param.shape) * 0.5).astype(np.float32)
        new = np.where(new == now, now + 1.0, new)
        if dtype == ms.float16:
            new = new.astype(np.float16).astype(np.float32)
        elif dtype == ms.bfloat16:
            new = (new.view(np.uint32) & 0xFFFF0000).view(np.float32)
        bump = np.float32(2.0) if dtype == ms.float32 else np.float32(4.0)  # exact in every dtype
        values[param.name] = np.where(new == now, now + bump, new).astype(np.float32)
    return values


class AssignAll(nn.Cell):
    """The user's own graph writing the parameters with ops.assign."""

    def __init__(self, params):
        super().__init__()
        self.params = ms.ParameterTuple(params)

    def construct(self, values):
        for param, value in zip(self.params, values):
            ops.assign(param, value)
        return True


def write(way, holder, values, layout, float32_everywhere, tmp_path):
    tensors = {name: (Tensor(v) if float32_everywhere else _typed(v, layout[name][0]))
               for name, v in values.items()}
    if way == "set_data":
        for param in holder.params:
            param.set_data(tensors[param.name])
    elif way == "load_param_into_net":
        ms.load_param_into_net(holder, {name: Parameter(t, name=name) for name, t in tensors.items()})
    elif way == "load_checkpoint":
        path = str(tmp_path / f"pretrained_{int(float32_everywhere)}.ckpt")
        ms.save_checkpoint([{"name": name, "data": t} for name, t in tensors.items()], path)
        ms.load_checkpoint(path, net=holder)
    elif way == "assign":
        AssignAll(holder.params)(tuple(tensors[p.name] for p in holder.params))
    else:
        raise AssertionError(way)


def _typed(value, dtype):
    if dtype == ms.bfloat16:
        return Tensor(value.astype(np.float32)).astype(ms.bfloat16)
    return Tensor(value.astype(np.float16 if dtype == ms.float16 else np.float32))


def check_writes_land(way, layout, tmp_path, nesterov=True, weight_decay=0.01, loss_scale=4.0):
    values = initial_values(layout=layout)
    reference, net16 = Holder(values, True), Holder(values, False)
    kwargs = dict(learning_rate=0.01, use_nesterov=nesterov, weight_decay=weight_decay, loss_scale=loss_scale)
    opt32, opt16 = AdamOffload(reference.params, **kwargs), AdamOffload(net16.params, **kwargs)
    steps = gradient_sequence(layout=layout)
    for t, step in enumerate(steps[:BEFORE + AFTER]):
        if t == BEFORE:
            new = written_values(net16, layout)
            write(way, net16, new, layout, False, tmp_path)
            write(way, reference, new, layout, True, tmp_path)
            for param in net16.params:  # the write landed before the step
                np.testing.assert_array_equal(bits(param), rne(new[param.name], param.dtype)
                                              if param.dtype != ms.float32 else new[param.name].view(np.uint32))
        opt32(tuple(as_tensor(k, step[k], True) for k in layout))
        opt16(tuple(as_tensor(k, step[k], False) for k in layout))
    assert_masters_follow(reference, net16, opt32, opt16)


WAYS = ["set_data", "load_param_into_net", "load_checkpoint", "assign"]
NO_BFLOAT16 = {k: v for k, v in LAYOUT.items() if v[0] != ms.bfloat16}


@MODES
@pytest.mark.parametrize("way", WAYS)
def test_a_write_on_the_host_path_is_kept(mode, way, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ms.set_context(mode=mode)
    # MindSpore's CPU backend has no bfloat16 Assign: the user's ops.assign can write float16 only.
    check_writes_land(way, NO_BFLOAT16 if way == "assign" else LAYOUT, tmp_path)


@MODES
@pytest.mark.parametrize("way", WAYS)
def test_a_write_on_the_device_path_is_kept(mode, way, tmp_path, monkeypatch):
    """MINDSPORE_OFFLOAD_HOST_APPLY=0, as on Ascend/GPU: the parameter travels to the host op with the
    gradient, so the pass sees the write there too (float16: the CPU backend assigns no bfloat16)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MINDSPORE_OFFLOAD_HOST_APPLY", "0")
    ms.set_context(mode=mode)
    check_writes_land(way, NO_BFLOAT16, tmp_path)


def test_a_write_before_the_first_step_is_kept(tmp_path, monkeypatch):
    """The common case: AdamOffload built on a fresh net, then pretrained weights loaded: the first step
    moves the loaded weight by about lr, not back towards the construction-time value."""
    monkeypatch.chdir(tmp_path)
    ms.set_context(mode=ms.GRAPH_MODE)
    param = Parameter(Tensor(np.zeros(4, np.float16)), name="w")
    opt = AdamOffload([param], learning_rate=1e-3)
    ms.load_param_into_net(_Net(param), {"w": Parameter(Tensor(np.full(4, 0.5, np.float16)), name="w")})
    opt((Tensor(np.ones(4, np.float16)),))
    got = param.asnumpy().astype(np.float32)
    np.testing.assert_allclose(got, 0.5 - 1e-3, atol=2.0**-11)  # one Adam step of lr from 0.5 (float16 ulp)
    assert (got > 0.49).all()


class _Net(nn.Cell):
    def __init__(self, param):
        super().__init__()
        self.w = param


@MODES
def test_a_checkpoint_loaded_into_a_trained_optimizer_is_where_training_continues(mode, tmp_path, monkeypatch):
    """Save after 3 steps, take 2 more, load the save (parameters, masters, moments, beta powers and
    global_step all get new storage in PyNative), take the 2 steps again: the same bits as the first
    time. In PyNative the optimizer's compiled step must follow the new storage, or it goes on updating
    the old one and the 2 steps are lost."""
    monkeypatch.chdir(tmp_path)
    ms.set_context(mode=mode)
    holder = Holder(initial_values(), False)
    opt = AdamOffload(holder.params, learning_rate=0.01, weight_decay=0.01)
    cell = _Both(holder, opt)
    steps = gradient_sequence()
    feed = lambda step: opt(tuple(as_tensor(k, step[k], False) for k in LAYOUT))  # noqa: E731
    for step in steps[:3]:
        feed(step)
    path = str(tmp_path / "three.ckpt")
    ms.save_checkpoint(cell, path)
    for step in steps[3:5]:
        feed(step)
    first = {p.name: bits(p).copy() for p in cell.get_parameters()}
    ms.load_checkpoint(path, net=cell)
    assert int(opt.global_step.asnumpy()[0]) == 3
    for step in steps[3:5]:
        feed(step)
    assert int(opt.global_step.asnumpy()[0]) == 5
    for param in cell.get_parameters():
        np.testing.assert_array_equal(bits(param), first[param.name], err_msg=param.name)


class _Both(nn.Cell):
    def __init__(self, holder, opt):
        super().__init__(auto_prefix=False)
        self.holder = holder
        self.opt = opt
