"""Small nets, data and a training loop shared by the optimizer tests.

Every net is built from the same NumPy-drawn weights, so two optimizers start from identical
parameters whatever MindSpore's own random state is, and every batch is a fixed NumPy array.
"""
import numpy as np

import mindspore as ms
from mindspore import Tensor, nn, ops

BATCH = 8  # small keeps 20 steps at ~0.2 s in PyNative on two cores; BatchNorm still sees 8x28x28
NUM_CLASS = 10
IMAGE_SHAPE = (1, 32, 32)


class LeNet5BN(nn.Cell):
    """LeNet5 with a BatchNorm after the first convolution, so 'gamma' and 'beta' parameters exist.

    Two choices keep it well conditioned, so that two optimizers that differ by a float32 rounding
    per step stay that close after 20 steps (parity then tests the optimizer, not the net):

    - Tanh and average pooling, as in LeCun's original, rather than ReLU and max pooling: the loss
      is smooth in the weights. With kinks, a one-ulp difference puts the two runs on opposite
      sides of a ReLU's zero or a max pool's tie a few steps later, and their gradients differ by
      a percent from then on.
    - One BatchNorm, not one per convolution: a second BatchNorm after conv2 removes, to first
      order, any shift that bn1.beta makes, so bn1.beta's gradient is a near-total cancellation
      and its moments drift 1e-4 to 1e-3 apart in 20 steps from a rounding per step.

    With these, the worst element of any parity case needs a relative tolerance below 1e-6.
    """

    def __init__(self, num_class=NUM_CLASS, num_channel=1):
        super().__init__()
        self.conv1 = nn.Conv2d(num_channel, 6, 5, pad_mode="valid")
        self.bn1 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 16, 5, pad_mode="valid")
        self.fc1 = nn.Dense(16 * 5 * 5, 120)
        self.fc2 = nn.Dense(120, 84)
        self.fc3 = nn.Dense(84, num_class)
        self.tanh = nn.Tanh()
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)
        self.flatten = nn.Flatten()

    def construct(self, x):
        x = self.pool(self.tanh(self.bn1(self.conv1(x))))
        x = self.pool(self.tanh(self.conv2(x)))
        x = self.flatten(x)
        x = self.tanh(self.fc1(x))
        x = self.tanh(self.fc2(x))
        return self.fc3(x)


def initial_weights(net, seed=0):
    """Fixed values for every trainable parameter, by name: He-scaled normals for weights, small
    normals for biases and BatchNorm's beta, 1 plus a small normal for its gamma."""
    rng = np.random.default_rng(seed)
    values = {}
    for param in net.trainable_params():
        shape = param.shape
        if param.name.endswith("gamma"):
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        elif param.name.endswith("beta") or param.name.endswith("bias"):
            value = 0.1 * rng.standard_normal(shape)
        else:
            value = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))
        values[param.name] = value.astype(np.float32)
    return values


def build_net(net_class=LeNet5BN, seed=0, **kwargs):
    """A fresh `net_class(**kwargs)` whose trainable parameters hold `initial_weights(seed)`."""
    net = net_class(**kwargs)
    values = initial_weights(net, seed)
    for param in net.trainable_params():
        param.set_data(Tensor(values[param.name]))
    return net


def batches(steps, seed=1, batch=BATCH, image_shape=IMAGE_SHAPE, num_class=NUM_CLASS):
    """`steps` fixed (inputs, labels) pairs of float32 images and int32 sparse labels."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        x = rng.standard_normal((batch, *image_shape)).astype(np.float32)
        y = rng.integers(0, num_class, batch).astype(np.int32)
        out.append((x, y))
    return out


class ShrinkingWeightDecay(nn.Cell):
    """A dynamic weight decay: 0.02 / (1 + step)."""

    def construct(self, global_step):
        step = ops.cast(global_step, ms.float32).reshape(())
        return 0.02 / (1.0 + step)


def loss_fn():
    return nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")


def train(opt_factory, steps=20, mode=ms.GRAPH_MODE, net_class=LeNet5BN, loss_scale_manager=None, data_seed=1):
    """Trains a fresh `net_class` from the fixed weights for `steps` batches and returns every parameter
    of the train cell (network, moment1.*, moment2.*, beta1_power, beta2_power, global_step, ...) as
    {name: numpy array}.

    `opt_factory(net)` builds the optimizer. With a `loss_scale_manager`, the train cell is the one
    `ms.Model(..., loss_scale_manager=...)` builds (`amp.build_train_network` at level O0); otherwise
    it is `nn.TrainOneStepCell(nn.WithLossCell(net, loss), opt)`.
    """
    ms.set_context(mode=mode)
    net = build_net(net_class)
    opt = opt_factory(net)
    if loss_scale_manager is None:
        cell = nn.TrainOneStepCell(nn.WithLossCell(net, loss_fn()), opt)
    else:
        cell = ms.amp.build_train_network(net, opt, loss_fn(), level="O0", loss_scale_manager=loss_scale_manager)
    cell.set_train()
    for x, y in batches(steps, seed=data_seed):
        loss = cell(Tensor(x), Tensor(y))
        if not np.isfinite(loss.asnumpy()).all():
            raise FloatingPointError(f"the loss is not finite: {loss}")
    return state_of(cell)


def state_of(cell):
    """{name: numpy copy} of every parameter of `cell`; a repeated name is an error, not an overwrite."""
    state = {}
    for name, param in cell.parameters_and_names():
        if name in state:
            raise KeyError(f"two parameters are named '{name}'")
        state[name] = param.asnumpy().copy()
    return state
