"""AdamOffload inside mindspore.Model: train and evaluate, with and without dataset sinking."""
import numpy as np
import pytest

import mindspore as ms
import mindspore.dataset as ds
from mindspore import nn
from mindspore.train import Callback

from mindspore_offload import AdamOffload

sklearn_datasets = pytest.importorskip("sklearn.datasets")


class DigitsNet(nn.Cell):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Dense(64, 64)
        self.relu = nn.ReLU()
        self.fc2 = nn.Dense(64, 10)

    def construct(self, x):
        return self.fc2(self.relu(self.fc1(x)))


def digits(batch_size=64):
    """scikit-learn's 1797 8x8 digits, scaled to [0, 1]; a fixed 80/20 split."""
    images, labels = sklearn_datasets.load_digits(return_X_y=True)
    images = (images / 16.0).astype(np.float32)
    labels = labels.astype(np.int32)
    order = np.random.default_rng(0).permutation(len(labels))
    images, labels = images[order], labels[order]
    split = int(0.8 * len(labels))

    def dataset(x, y):
        return ds.NumpySlicesDataset({"image": x, "label": y}, shuffle=False).batch(batch_size)

    return dataset(images[:split], labels[:split]), dataset(images[split:], labels[split:])


class StepLosses(Callback):
    def __init__(self):
        super().__init__()
        self.losses = []

    def on_train_step_end(self, run_context):
        self.losses.append(float(np.mean(run_context.original_args().net_outputs.asnumpy())))


@pytest.mark.parametrize("mode, sink", [(ms.GRAPH_MODE, False), (ms.GRAPH_MODE, True), (ms.PYNATIVE_MODE, False)],
                         ids=["graph", "graph-sink", "pynative"])
def test_model_trains_and_evaluates(mode, sink):
    ms.set_context(mode=mode)
    ms.set_seed(1)
    train_set, test_set = digits()
    net = DigitsNet()
    loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    model = ms.Model(net, loss, optimizer=AdamOffload(net.trainable_params(), learning_rate=0.01),
                     metrics={"accuracy", "loss"})
    before = model.eval(test_set, dataset_sink_mode=sink)
    losses = StepLosses()
    model.train(5, train_set, callbacks=[losses], dataset_sink_mode=sink)
    after = model.eval(test_set, dataset_sink_mode=sink)

    assert losses.losses, "the train loop reported no step"
    assert all(np.isfinite(losses.losses))
    assert np.mean(losses.losses[-3:]) < 0.5 * losses.losses[0]
    assert after["loss"] < 0.5 * before["loss"]
    assert after["accuracy"] > 0.9, after
    assert model.train_network.optimizer.global_step.asnumpy().item() == 5 * train_set.get_dataset_size()
