"""examples/lenet5.py --dtype float16: float16 LeNet5 with float32 masters and dynamic loss scaling."""
import numpy as np
import pytest

import mindspore as ms
from mindspore import Tensor, amp, nn

from mindspore_offload import AdamOffload
from test_example import lenet5


@pytest.fixture(autouse=True)
def _pynative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mode = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    yield
    ms.set_context(mode=mode)


def setup(scale):
    ms.set_seed(3)
    net = lenet5.to_float16(lenet5.LeNet5())
    assert {p.dtype for p in net.get_parameters()} == {ms.float16}
    optimizer = AdamOffload(net.trainable_params(), learning_rate=0.002)
    scaler = amp.DynamicLossScaler(scale_value=scale, scale_factor=2, scale_window=50)
    loss_fn = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    return net, optimizer, scaler, lenet5.make_train_step(net, loss_fn, optimizer, scaler)


def everything(net, optimizer):
    params = list(net.get_parameters()) + list(optimizer.get_parameters())
    return {p.name: p.asnumpy().copy() for p in params}


def batches(count):
    train, _ = lenet5.load_data(None, batch_size=32)
    return list(train.create_tuple_iterator(num_epochs=1))[:count]


def test_an_overflowed_step_is_skipped_with_nothing_changed():
    net, optimizer, scaler, train_step = setup(2.0 ** 12)
    data = batches(3)
    for images, labels in data[:2]:
        assert train_step(images, labels)[1]
    before = everything(net, optimizer)
    assert any(name.startswith("master.") for name in before)
    scaler.scale_value.set_data(Tensor(2.0 ** 60, ms.float32))  # the scaled gradients overflow float16
    _, finite = train_step(*data[2])
    assert not finite
    assert float(scaler.scale_value.asnumpy()) == 2.0 ** 59
    after = everything(net, optimizer)
    for name, value in before.items():
        np.testing.assert_array_equal(after[name], value, err_msg=name)


def test_the_loss_falls_and_the_parameters_follow_their_masters():
    net, optimizer, _, train_step = setup(2.0 ** 12)
    losses = []
    for images, labels in batches(30):
        loss, finite = train_step(images, labels)
        assert finite
        losses.append(float(loss.asnumpy()))
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses
    masters = {p.name[len("master."):]: p.asnumpy() for p in optimizer.get_parameters() if p.name.startswith("master.")}
    for param in net.trainable_params():
        np.testing.assert_array_equal(param.asnumpy(), masters[param.name].astype(np.float16))
