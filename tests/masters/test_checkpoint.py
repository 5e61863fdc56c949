"""Checkpoints with float32 masters: resume bit-identical, a missing master is refused, and a float32
checkpoint (ours or nn.AdamOffload's) loads into a 16-bit network."""
import numpy as np
import pytest

import mindspore as ms
from mindspore import nn

from mindspore_offload import AdamOffload, load_float32_checkpoint, load_param_into_net_checked
from support.masters import CASES, LAYOUT, Holder, as_tensor, bits, gradient_sequence, initial_values, rne

CASE = CASES["nesterov+decay+scale"]


class Train(nn.Cell):
    """The network's parameters and the optimizer's state under one cell, as a train cell holds them."""

    def __init__(self, float32_everywhere, optimizer=AdamOffload):
        super().__init__(auto_prefix=False)  # as TrainOneStepCell: the optimizer's names stay its own
        self.float32_everywhere = float32_everywhere
        self.net = Holder(initial_values(), float32_everywhere)
        kwargs = dict(learning_rate=0.01, use_nesterov=CASE["nesterov"], weight_decay=CASE["weight_decay"],
                      loss_scale=CASE["loss_scale"])
        self.opt = optimizer(self.net.params, **kwargs)

    def run(self, steps):
        for step in steps:
            self.opt(tuple(as_tensor(k, step[k], self.float32_everywhere) for k in LAYOUT))


def state(cell):
    return {p.name: bits(p).copy() for p in cell.get_parameters()}


@pytest.fixture(autouse=True)
def graph(graph_mode):
    yield


@pytest.mark.compat
def test_resume_is_bit_identical(tmp_path):
    steps = gradient_sequence()
    whole = Train(False)
    whole.run(steps[:10])
    ms.save_checkpoint(whole, str(tmp_path / "half.ckpt"))
    whole.run(steps[10:])
    resumed = Train(False)
    load_param_into_net_checked(resumed, str(tmp_path / "half.ckpt"))
    resumed.run(steps[10:])
    a, b = state(whole), state(resumed)
    assert sorted(a) == sorted(b) and any(name.startswith("master.") for name in a)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.parametrize("strict", [True, False])
def test_a_missing_master_is_a_problem_and_nothing_loads(tmp_path, strict):
    source = Train(False)
    source.run(gradient_sequence()[:2])
    saved = {p.name: p for p in source.get_parameters() if p.name != "master.w16"}
    target = Train(False)
    before = state(target)
    with pytest.raises(ValueError, match=r"master\.w16.*cannot be rebuilt.*load_float32_checkpoint"):
        load_param_into_net_checked(target, saved, strict=strict)
    for name, value in state(target).items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


@pytest.mark.compat
@pytest.mark.parametrize("maker", ["ours", "nn.AdamOffload"])
def test_a_float32_checkpoint_loads_into_a_16_bit_net_and_training_continues(tmp_path, maker):
    steps = gradient_sequence()
    optimizer = AdamOffload if maker == "ours" else nn.AdamOffload
    float32 = Train(True, optimizer)
    float32.run(steps[:5])
    ms.save_checkpoint(float32, str(tmp_path / "f32.ckpt"))
    half = Train(False)
    load_float32_checkpoint(half, str(tmp_path / "f32.ckpt"))
    for p32, p16 in zip(float32.net.params, half.net.params):
        want = p32.asnumpy()
        if p16.dtype != ms.float32:
            master = next(p for p in half.opt.get_parameters() if p.name == "master." + p16.name)
            np.testing.assert_array_equal(bits(master), want.view(np.uint32))
            np.testing.assert_array_equal(bits(p16), rne(want, p16.dtype))
    if maker == "ours":  # and the two go on together, bit for bit
        float32.run(steps[5:10])
        half.run(steps[5:10])
        for p32, p16 in zip(float32.net.params, half.net.params):
            name = p16.name if p16.dtype == ms.float32 else "master." + p16.name
            got = next(p for p in half.get_parameters() if p.name == name)
            np.testing.assert_array_equal(bits(got), bits(p32), err_msg=name)


def test_a_master_without_its_parameter_sets_the_parameter_to_it_rounded(tmp_path):
    """strict=False, the checkpoint holds master.w16 but not w16: the loaded master wins and w16 becomes it
    rounded to nearest even, so the pair is consistent and training goes on as from the saved state."""
    steps = gradient_sequence()
    source = Train(False)
    source.run(steps[:3])
    sixteen = [p.name for p in source.net.params if p.dtype != ms.float32]
    ms.save_checkpoint(source, str(tmp_path / "step3.ckpt"))
    saved = {name: value for name, value in ms.load_checkpoint(str(tmp_path / "step3.ckpt")).items()
             if name not in sixteen}
    target = Train(False)  # its 16-bit values are the unstepped ones
    load_param_into_net_checked(target, saved, strict=False)
    got, want = state(target), state(source)
    for name in sixteen:
        master = want["master." + name].view(np.float32)
        np.testing.assert_array_equal(got["master." + name], want["master." + name], err_msg=name)
        np.testing.assert_array_equal(got[name], rne(master, LAYOUT[name][0]), err_msg=name)
    source.run(steps[3:6])
    target.run(steps[3:6])
    got, want = state(target), state(source)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
