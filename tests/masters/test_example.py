"""examples/lenet5.py --dtype float16: float16 LeNet5 with float32 masters and dynamic loss scaling."""
import numpy as np
import pytest

import mindspore as ms
from mindspore import Tensor, amp, nn

from mindspore_offload import AdamOffload
from support.examples import lenet5


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


def test_resume_continues_with_the_saved_loss_scale(tmp_path):
    """A float16 run saved after its epoch is resumed with the loss scale and counter it saved: here a scale
    of 128 with 48 of the 50 finite steps towards doubling, so the second step of the resumed run doubles it
    (a scaler restarted at 4096 would still be at 4096 with its counter at 11)."""
    from mindspore_offload import save_checkpoint

    first, edited, reloaded, continued = (str(tmp_path / f"{name}.ckpt")
                                          for name in ("first", "edited", "reloaded", "continued"))
    lenet5.main(["--dtype", "float16", "--epochs", "1", "--batch-size", "128", "--save-checkpoint", first])
    state = ms.load_checkpoint(first)
    steps = 1437 // 128
    assert state["global_step"].asnumpy().item() == steps
    assert float(state["loss_scale.scale_value"].asnumpy()) == 4096.0
    assert int(state["loss_scale.counter"].asnumpy()) == steps
    state["loss_scale.scale_value"] = ms.Parameter(Tensor(128.0, ms.float32), name="loss_scale.scale_value")
    state["loss_scale.counter"] = ms.Parameter(Tensor(48, ms.int32), name="loss_scale.counter")
    save_checkpoint(state, edited)

    # --epochs 0: load and save again; everything, the scaler's state included, comes back as it was.
    lenet5.main(["--dtype", "float16", "--resume", edited, "--epochs", "0", "--save-checkpoint", reloaded])
    before, again = ms.load_checkpoint(edited), ms.load_checkpoint(reloaded)
    assert again.keys() == before.keys()
    for name, value in before.items():
        np.testing.assert_array_equal(again[name].asnumpy(), value.asnumpy(), err_msg=name)
        assert again[name].dtype == value.dtype, name

    lenet5.main(["--dtype", "float16", "--resume", edited, "--epochs", "1", "--batch-size", "128",
                 "--save-checkpoint", continued])
    after = ms.load_checkpoint(continued)
    assert after["global_step"].asnumpy().item() == 2 * steps  # no step overflowed at these scales
    assert float(after["loss_scale.scale_value"].asnumpy()) == 256.0
    assert int(after["loss_scale.counter"].asnumpy()) == steps - 2


def test_a_checkpoint_without_a_loss_scale_resumes_from_the_initial_one(tmp_path, capsys):
    """One saved before the example kept the scaler's state: the run says so and starts at 4096."""
    net = lenet5.to_float16(lenet5.LeNet5())
    optimizer = AdamOffload(net.trainable_params(), learning_rate=0.002)
    old, resaved = str(tmp_path / "old.ckpt"), str(tmp_path / "resaved.ckpt")
    ms.save_checkpoint([*net.get_parameters(), *optimizer.get_parameters()], old)
    lenet5.main(["--dtype", "float16", "--resume", old, "--epochs", "0", "--save-checkpoint", resaved])
    assert f"'{old}' holds no loss scale: starting from 4096" in capsys.readouterr().out
    state = ms.load_checkpoint(resaved)
    assert state["loss_scale.scale_value"].asnumpy().item() == 4096.0
    assert state["loss_scale.counter"].asnumpy().item() == 0
