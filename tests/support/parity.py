"""What the parity tests of AdamOffload and AdamWeightDecayOffload against MindSpore's own optimizers share
(tests/optimizer): the modes, the ways of building an optimizer's arguments from a net, training runs and
the checks made on them."""
import numpy as np
import pytest

import mindspore as ms
import mindspore.dataset as ds
from mindspore import Tensor

from support import nets

MODES = pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE], ids=["graph", "pynative"])
STEPS = 20


def ungrouped(**kwargs):
    return lambda net: (net.trainable_params(), kwargs)


def grouped(conv_decay, other_lr, **kwargs):
    """The docstrings' groups: conv weights decay by `conv_decay`, the rest learn at `other_lr`; `kwargs`
    are the optimizer's own (learning_rate, weight_decay)."""

    def groups(net):
        conv = [p for p in net.trainable_params() if "conv" in p.name]
        other = [p for p in net.trainable_params() if "conv" not in p.name]
        return [{"params": conv, "weight_decay": conv_decay}, {"params": other, "lr": other_lr},
                {"order_params": net.trainable_params()}], kwargs

    return groups


def train_case(arguments, optimizer_cls, mode, steps=STEPS, loss_scale_manager=None, **extra):
    """nets.train with `optimizer_cls(*arguments(net))` (and `extra` keyword arguments)."""

    def factory(net):
        params, kwargs = arguments(net)
        return optimizer_cls(params, **kwargs, **extra)

    return nets.train(factory, steps=steps, mode=mode, loss_scale_manager=loss_scale_manager)


def assert_every_weight_trained(state):
    for name, initial in nets.initial_weights(nets.LeNet5BN()).items():
        assert not np.array_equal(state[name], initial), f"{name} did not train"


def assert_decay_moves_the_weights(decayed, plain):
    """The decay changes this net's training (so the decay cases test something)."""
    for name in ("conv1.weight", "conv2.weight", "fc1.weight"):
        assert not np.allclose(decayed[name], plain[name], rtol=1e-4, atol=0), name


def assert_zero_gradients_move_all_but_gamma_and_beta(optimizer_cls, mode, **kwargs):
    """With zero gradients only the weight decay moves a parameter: after 3 steps of
    `optimizer_cls(params, **kwargs)`, every parameter but 'gamma' and 'beta' has moved, and those two are
    bit-identical."""
    ms.set_context(mode=mode)
    net = nets.build_net()
    opt = optimizer_cls(net.trainable_params(), **kwargs)
    before = {p.name: p.asnumpy().copy() for p in net.trainable_params()}
    zeros = tuple(Tensor(np.zeros(p.shape, np.float32)) for p in net.trainable_params())
    for _ in range(3):
        opt(zeros)
    for param in net.trainable_params():
        unchanged = np.array_equal(param.asnumpy(), before[param.name])
        assert unchanged == ("gamma" in param.name or "beta" in param.name), param.name


def model_state(mode, make_optimizer, loss_scale_manager=None):
    """What users write: ms.Model over nets.build_net() with `make_optimizer(params)`, trained one epoch of
    STEPS batches from a dataset; every parameter of its train network."""
    xs, ys = (np.stack(arrays) for arrays in zip(*nets.batches(STEPS)))
    ms.set_context(mode=mode)
    net = nets.build_net()
    dataset = ds.NumpySlicesDataset({"x": xs.reshape(-1, *nets.IMAGE_SHAPE), "y": ys.reshape(-1)},
                                    shuffle=False).batch(nets.BATCH)
    manager = {} if loss_scale_manager is None else {"loss_scale_manager": loss_scale_manager}
    model = ms.Model(net, nets.loss_fn(), make_optimizer(net.trainable_params()), **manager)
    model.train(1, dataset, dataset_sink_mode=False)
    return nets.state_of(model.train_network)
