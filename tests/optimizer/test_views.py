"""Parameters (and moments) whose data is a non-contiguous view still get every update.

MindSpore's jit pipeline hands an aot op a temporary contiguous copy of a view and drops what the op
writes there (docs/design.md, "Parameters that are views"), so without care the host-apply path trains
nothing and says nothing. AdamOffload gives such Parameters contiguous storage at construction and at
every compile. Each case below trains a view and a contiguous copy of the same values side by side and
requires the same bits from both, and from nn.AdamOffload on the copy (32- and 8-element parameters: all
in the kernel's vector body, where ours and MindSpore's round alike).
"""
import numpy as np
import pytest

import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops

from mindspore_offload import AdamOffload

STEPS = 4
RNG = np.random.default_rng(7)
WEIGHT = RNG.standard_normal((4, 8)).astype(np.float32)
BIAS = RNG.standard_normal(8).astype(np.float32)
X = Tensor(RNG.standard_normal((3, 4)).astype(np.float32))


class Affine(nn.Cell):
    def __init__(self):
        super().__init__()
        self.w = Parameter(Tensor(np.zeros((4, 8), np.float32)), name="w")
        self.b = Parameter(Tensor(BIAS.copy()), name="b")

    def construct(self, x):
        return ops.tanh(ops.matmul(x, self.w) + self.b).sum() + (self.w * self.w).sum()


def transpose_view(values):
    return Tensor(np.ascontiguousarray(values.T)).transpose()


def column_block(values):
    """The second of three column blocks of a wider tensor: strides (24, 1), offset 8."""
    wide = np.concatenate([np.full_like(values, -1.0), values, np.full_like(values, -2.0)], axis=1)
    return ops.split(Tensor(wide), 8, axis=1)[1]


VIEWS = {"transpose": transpose_view, "split": column_block}


def train(net, optimizer, style):
    if style == "cell":
        step = nn.TrainOneStepCell(net, optimizer)
        for _ in range(STEPS):
            step(X)
        return
    grad_fn = ms.value_and_grad(net, None, optimizer.parameters)

    @ms.jit
    def step(x):
        loss, grads = grad_fn(x)
        optimizer(grads)
        return loss

    for _ in range(STEPS):
        step(X)


def state(net, optimizer):
    names = [p.name for p in net.trainable_params()]
    values = {name: p.asnumpy() for name, p in zip(names, net.trainable_params())}
    for prefix, moments in (("m1", optimizer.moment1), ("m2", optimizer.moment2)):
        values.update({f"{prefix}.{name}": m.asnumpy() for name, m in zip(names, moments)})
    values["global_step"] = optimizer.global_step.asnumpy()
    values["beta1_power"] = optimizer.beta1_power.asnumpy()
    return values


def run(mode, style, cls, view=None, when="before"):
    """Train Affine from WEIGHT; `view` makes w (or moment1 of w) a view, before or after construction."""
    ms.set_context(mode=mode)
    net = Affine()
    net.w.set_data(Tensor(WEIGHT.copy()))
    if view is not None and when == "before":
        net.w.set_data(VIEWS[view](WEIGHT))
        assert not net.w.is_contiguous()
    optimizer = cls(net.trainable_params(), learning_rate=0.05)
    if view is not None and when == "after":
        net.w.set_data(VIEWS[view](WEIGHT))
    if view is not None and when == "moment":
        optimizer.moment1[0].set_data(VIEWS[view](np.zeros_like(WEIGHT)))
    train(net, optimizer, style)
    return state(net, optimizer)


MODES = {"pynative": ms.PYNATIVE_MODE, "graph": ms.GRAPH_MODE}


@pytest.fixture(params=["host_apply", "delta"])
def path(request, monkeypatch):
    if request.param == "delta":
        monkeypatch.setenv("MINDSPORE_OFFLOAD_HOST_APPLY", "0")
    else:
        monkeypatch.delenv("MINDSPORE_OFFLOAD_HOST_APPLY", raising=False)
    return request.param


@pytest.fixture
def restore_mode(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mode = ms.get_context("mode")
    yield
    ms.set_context(mode=mode)


@pytest.mark.parametrize("when", ["before", "after", "moment"])
@pytest.mark.parametrize("view", sorted(VIEWS))
@pytest.mark.parametrize("style", ["cell", "jit"])
@pytest.mark.parametrize("mode", sorted(MODES))
def test_view_trains_like_a_contiguous_copy(mode, style, view, when, path, restore_mode):
    reference = run(MODES[mode], style, AdamOffload)
    got = run(MODES[mode], style, AdamOffload, view, when)
    theirs = run(MODES[mode], style, nn.AdamOffload)
    assert not np.array_equal(reference["w"], WEIGHT)
    for name, value in reference.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)
        np.testing.assert_array_equal(theirs[name], value, err_msg=f"nn.AdamOffload {name}")


def test_the_parameter_object_and_name_are_kept(restore_mode):
    ms.set_context(mode=ms.PYNATIVE_MODE)
    net = Affine()
    base = Tensor(np.ascontiguousarray(WEIGHT.T))
    net.w.set_data(base.transpose())
    w = net.w
    optimizer = AdamOffload(net.trainable_params(), learning_rate=0.05)
    assert net.w is w and w.name == "w" and w.is_contiguous()
    assert optimizer.parameters[0] is w and optimizer.moment1[0].name == "moment1.w"
    np.testing.assert_array_equal(w.asnumpy(), WEIGHT)
    train(net, optimizer, "cell")
    assert not np.array_equal(w.asnumpy(), WEIGHT)
    # Like GRAPH_MODE, the trained Parameter no longer shares memory with the tensor it viewed.
    np.testing.assert_array_equal(base.asnumpy(), WEIGHT.T)
