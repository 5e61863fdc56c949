"""Train LeNet5 with mindspore_offload.AdamOffload.

This is the example from the documentation of ``nn.AdamOffload``, made runnable.
The only change from code written for ``nn.AdamOffload`` is the import line.

Data: real MNIST when ``--data-dir`` is given, otherwise scikit-learn's bundled
handwritten digits (1797 real 8x8 scans, no download), resized to 32x32 and split
80/20 with a fixed seed. Both go through the same ``mindspore.dataset`` pipeline.

Usage::

    python examples/lenet5.py                                # digits, GRAPH_MODE
    python examples/lenet5.py --mode pynative
    python examples/lenet5.py --group-params                 # the docs' grouped setup
    python examples/lenet5.py --data-dir MNIST_Data          # real MNIST
    python examples/lenet5.py --save-checkpoint lenet5.ckpt    # saved after every epoch
    python examples/lenet5.py --resume lenet5.ckpt --epochs 0   # evaluate only
    python examples/lenet5.py --dtype float16                # float16 parameters, float32 masters
    python examples/lenet5.py --dtype float16 --save-checkpoint f16.ckpt   # with the loss scale
    python examples/lenet5.py --optimizer adamw              # AdamWeightDecayOffload (nn.AdamWeightDecay)
    python examples/lenet5.py --optimizer adamw --dtype float16

The last line printed is ``accuracy: 0.xxxx`` on held-out data.
"""
import argparse
import os
import sys

import numpy as np

import mindspore as ms
import mindspore.dataset as ds
from mindspore import amp, nn, ops
from mindspore.common.initializer import Normal
from mindspore.dataset import transforms, vision
from mindspore.train import Callback, LossMonitor, TimeMonitor

from mindspore_offload import AdamOffload, AdamWeightDecayOffload, kernel, save_checkpoint

# MNIST's pixel mean and standard deviation, as in MindSpore's LeNet5 tutorial.
# The digits are normalised with the same numbers so one pipeline serves both.
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
IMAGE_SIZE = 32

# The digits come from scikit-learn, which `pip install mindspore-offload` does not bring.
MISSING_SKLEARN = (
    "For 'lenet5', the default data (scikit-learn's bundled handwritten digits) needs scikit-learn, "
    "which is not installed. Install it with\n"
    "    pip install 'mindspore-offload[examples]'    (or: pip install scikit-learn)\n"
    "or train on MNIST instead: --data-dir MNIST_Data (see --help).")

# The files ds.MnistDataset reads, by usage.
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class LeNet5(nn.Cell):
    """The standard MindSpore LeNet5 (docs/mindspore/code/lenet.py)."""

    def __init__(self, num_class=10, num_channel=1):
        super().__init__()
        self.conv1 = nn.Conv2d(num_channel, 6, 5, pad_mode="valid")
        self.conv2 = nn.Conv2d(6, 16, 5, pad_mode="valid")
        self.fc1 = nn.Dense(16 * 5 * 5, 120, weight_init=Normal(0.02))
        self.fc2 = nn.Dense(120, 84, weight_init=Normal(0.02))
        self.fc3 = nn.Dense(84, num_class, weight_init=Normal(0.02))
        self.relu = nn.ReLU()
        self.max_pool2d = nn.MaxPool2d(kernel_size=2, stride=2)
        self.flatten = nn.Flatten()

    def construct(self, x):
        x = self.max_pool2d(self.relu(self.conv1(x)))
        x = self.max_pool2d(self.relu(self.conv2(x)))
        x = self.flatten(x)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        return self.fc3(x)


def digits_arrays(test_size=0.2, random_state=0):
    """scikit-learn's digits as MNIST-like arrays, split into train and test.

    Returns ``((train_images, train_labels), (test_images, test_labels))``; images are
    uint8 of shape (N, 8, 8, 1) scaled to 0..255 and labels uint32, the dtypes and
    layout ``ds.MnistDataset`` yields, so the rest of the pipeline is shared.
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ModuleNotFoundError as error:
        if error.name != "sklearn":
            raise
        raise ModuleNotFoundError(MISSING_SKLEARN, name="sklearn") from error

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., np.newaxis]
    labels = digits.target.astype(np.uint32)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_size, random_state=random_state, stratify=labels)
    return (x_train, y_train), (x_test, y_test)


def digits_dataset(usage):
    """The digits' 'train' or 'test' split as a dataset with columns image, label."""
    train, test = digits_arrays()
    images, labels = train if usage == "train" else test
    return ds.NumpySlicesDataset({"image": images, "label": labels}, shuffle=False)


def mnist_dir(data_dir, usage):
    """The folder holding MNIST's files for usage ('train' or 'test').

    Two layouts are accepted:

    * ``data_dir/train/train-*-ubyte`` and ``data_dir/test/t10k-*-ubyte`` (MindSpore
      tutorials' MNIST_Data);
    * all four files directly in ``data_dir`` (the layout ds.MnistDataset documents).

    Files must be uncompressed (gunzip the ``.gz`` downloads).
    """
    for folder in (os.path.join(data_dir, usage), data_dir):
        if all(os.path.isfile(os.path.join(folder, name)) for name in MNIST_FILES[usage]):
            return folder
    names = ", ".join(MNIST_FILES[usage])
    hint = ""
    if any(os.path.isfile(os.path.join(folder, name + ".gz"))
           for folder in (os.path.join(data_dir, usage), data_dir) for name in MNIST_FILES[usage]):
        hint = " Found .gz files: decompress them with gunzip first."
    raise FileNotFoundError(
        f"For 'lenet5', the MNIST {usage} files ({names}) must be in '{data_dir}' or "
        f"'{os.path.join(data_dir, usage)}', but they were not found.{hint}")


def mnist_dataset(data_dir, usage):
    """MNIST's 'train' or 'test' split through ds.MnistDataset (columns image, label)."""
    return ds.MnistDataset(mnist_dir(data_dir, usage), usage=usage, shuffle=False)


def create_dataset(source, batch_size, training, num_parallel_workers=2):
    """The LeNet5 pipeline: resize to 32x32, normalise, CHW, int32 labels, shuffle, batch."""
    image_ops = [
        vision.Resize((IMAGE_SIZE, IMAGE_SIZE), interpolation=vision.Inter.LINEAR),
        vision.Rescale(1.0 / 255.0, 0.0),
        vision.Rescale(1.0 / MNIST_STD, -MNIST_MEAN / MNIST_STD),
        vision.HWC2CHW(),
    ]
    source = source.map(image_ops, "image", num_parallel_workers=num_parallel_workers)
    source = source.map(transforms.TypeCast(ms.int32), "label",
                        num_parallel_workers=num_parallel_workers)
    if training:
        source = source.shuffle(buffer_size=10000)
    # A fixed training batch shape keeps GRAPH_MODE from compiling a second graph for
    # the last batch; evaluation keeps every sample.
    return source.batch(batch_size, drop_remainder=training)


def load_data(data_dir=None, batch_size=32):
    """(train, test) batched datasets: MNIST from data_dir, or the digits when None."""
    if data_dir:
        train, test = mnist_dataset(data_dir, "train"), mnist_dataset(data_dir, "test")
    else:
        train, test = digits_dataset("train"), digits_dataset("test")
    return create_dataset(train, batch_size, True), create_dataset(test, batch_size, False)


# AdamWeightDecayOffload's decoupled weight decay when no groups are given (the name filter spares
# parameters called "beta" or "gamma"; LeNet5 has none).
ADAMW_WEIGHT_DECAY = 0.01


def create_optimizer(net, learning_rate, group_params=False, optimizer="adam"):
    """AdamOffload ("adam") or AdamWeightDecayOffload ("adamw") over all parameters, or over the
    docs' parameter groups.

    learning_rate is any kind both take: a float, a Tensor, a list or a
    LearningRateSchedule. With groups it is the base rate, used by the conv group.
    """
    optimizer_class = AdamWeightDecayOffload if optimizer == "adamw" else AdamOffload
    if not group_params:
        decay = {"weight_decay": ADAMW_WEIGHT_DECAY} if optimizer == "adamw" else {}
        return optimizer_class(params=net.trainable_params(), learning_rate=learning_rate, **decay)
    conv_params = list(filter(lambda x: "conv" in x.name, net.trainable_params()))
    no_conv_params = list(filter(lambda x: "conv" not in x.name, net.trainable_params()))
    group_params = [{"params": conv_params, "weight_decay": 0.01},
                    {"params": no_conv_params, "lr": 0.01},
                    {"order_params": net.trainable_params()}]
    return optimizer_class(group_params, learning_rate=learning_rate, weight_decay=0.0)


def checkpoint_step(path):
    """The optimizer's global_step stored in a checkpoint (0 if it has none)."""
    param_dict = ms.load_checkpoint(path, choice_func=lambda name: name == "global_step")
    if "global_step" not in param_dict:
        return 0
    return int(param_dict["global_step"].asnumpy().reshape(-1)[0])


def learning_rate_schedule(max_lr, start_step, steps):
    """Cosine decay from max_lr to max_lr / 100, ending after this run's steps.

    Decaying to a small rate makes the final accuracy steady from seed to seed; with
    a constant rate it wanders by a couple of points between epochs. The schedule is a
    function of the optimizer's global_step, so a resumed run, which restores
    global_step, carries on along a curve stretched over all its steps.
    """
    return nn.CosineDecayLR(max_lr / 100, max_lr, max(1, start_step + steps))


def resume(net, optimizer, path):
    """Load a checkpoint saved by --save-checkpoint into net and optimizer.

    Restores the weights and the optimizer's state: moment1.*, moment2.*, beta1_power,
    beta2_power and global_step (with --optimizer adamw: adam_m.*, adam_v.* and
    global_step). (The learning rate here is a schedule, computed from global_step, so
    --lr applies to the resumed run.) Checkpoints of nn.AdamOffload (nn.AdamWeightDecay)
    use the same names, so they load too.
    """
    param_dict = ms.load_checkpoint(path)
    net_missing, _ = ms.load_param_into_net(net, param_dict)
    opt_missing, _ = ms.load_param_into_net(optimizer, param_dict)
    missing = sorted(set(net_missing) | set(opt_missing))
    if missing:
        raise ValueError(f"For 'lenet5', the checkpoint '{path}' must hold every parameter of "
                         f"the network and the optimizer, but it lacks {missing}. Save it with "
                         f"--save-checkpoint, or ms.save_checkpoint(model.train_network, path).")


# --- float16 parameters with float32 master weights on the host ------------------------------------
#
# Model.train has no working dynamic loss scaling on the CPU backend, so this path is a plain loop:
# amp.DynamicLossScaler scales the float32 loss, amp.all_finite checks the float16 gradients, and a step
# whose gradients overflowed is skipped whole (the optimizer is not called: parameters, masters, moments,
# beta powers and global_step stay as they were) while the scaler halves its scale.
#
# The scaler's state is part of the run: its scale, and how many finite steps it has counted towards the
# next doubling (DynamicLossScaler keeps both as Parameters). The checkpoint holds them as two extra
# entries, so a resumed run goes on with the scale it had, not the initial one.

LOSS_SCALE = 2.0 ** 12
# Checkpoint entry -> the DynamicLossScaler attribute it holds.
LOSS_SCALER_ENTRIES = {"loss_scale.scale_value": "scale_value", "loss_scale.counter": "counter"}


def to_float16(net):
    """Makes every float32 parameter of ``net`` float16 (in place); AdamOffload gives each a float32
    master on the host, made from these float16 values."""
    for param in net.get_parameters():
        if param.dtype == ms.float32:
            param.set_dtype(ms.float16)
    return net


def make_train_step(net, loss_fn, optimizer, scaler):
    """One dynamically loss-scaled step: returns (loss, finite). The gradients stay float16; the
    unscale divides by a power of two, exact unless a value falls below float16's range."""

    def scaled_loss(images, labels):
        logits = net(images.astype(ms.float16))
        return scaler.scale(loss_fn(logits.astype(ms.float32), labels))

    grad_fn = ms.value_and_grad(scaled_loss, None, optimizer.parameters)

    def train_step(images, labels):
        loss, grads = grad_fn(images, labels)
        grads = scaler.unscale(grads)
        finite = amp.all_finite(grads)
        scaler.adjust(finite)
        if finite:
            optimizer(grads)
        return scaler.unscale(loss), bool(finite)

    return train_step


def make_loss_scaler(scale=LOSS_SCALE):
    """The dynamic loss scaler: doubles the scale after 50 finite steps in a row, halves it on an overflow."""
    return amp.DynamicLossScaler(scale_value=scale, scale_factor=2, scale_window=50)


def float16_checkpoint(net, optimizer, scaler):
    """What the float16 run saves: the network, the optimizer (masters included) and the scaler's state."""
    entries = {param.name: param for param in (*net.get_parameters(), *optimizer.get_parameters())}
    entries.update({name: getattr(scaler, attr) for name, attr in LOSS_SCALER_ENTRIES.items()})
    return entries


def resume_loss_scaler(scaler, path):
    """Sets the scaler's scale and counter to those saved in ``path`` by a float16 run.

    A checkpoint without them (saved by a float32 run, or by a version of this example that did not keep
    them) leaves the scaler at its initial scale, and says so.
    """
    # The whole file: with a choice_func that keeps nothing, load_checkpoint raises instead of returning {}.
    saved = {name: value for name, value in ms.load_checkpoint(path).items() if name in LOSS_SCALER_ENTRIES}
    if not saved:
        print(f"'{path}' holds no loss scale: starting from {float(scaler.scale_value.asnumpy()):g}", flush=True)
        return
    missing = sorted(set(LOSS_SCALER_ENTRIES) - set(saved))
    if missing:
        raise ValueError(f"For 'lenet5', the checkpoint '{path}' holds part of the loss scaler's state; it "
                         f"lacks {missing}. Resume from a checkpoint saved with --dtype float16 "
                         f"--save-checkpoint.")
    for name, attr in LOSS_SCALER_ENTRIES.items():
        getattr(scaler, attr).set_data(ms.Tensor(saved[name].asnumpy()))
    print(f"resumed loss scale: {float(scaler.scale_value.asnumpy()):g}, finite steps towards the next "
          f"doubling: {int(scaler.counter.asnumpy())}", flush=True)


def train_float16(net, optimizer, train_set, epochs, scaler, save_path=None):
    """Trains with dynamic loss scaling; prints the loss as LossMonitor does and the skipped steps, and
    saves everything (crash-safe) to ``save_path`` after every epoch."""
    loss_fn = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    train_step = make_train_step(net, loss_fn, optimizer, scaler)
    steps = train_set.get_dataset_size()
    for epoch in range(1, epochs + 1):
        skipped = 0
        for step, batch in enumerate(train_set.create_tuple_iterator(num_epochs=1), start=1):
            loss, finite = train_step(*batch)
            skipped += not finite
            if step % max(1, steps // 4) == 0:
                print(f"epoch: {epoch} step: {step}, loss is {float(loss.asnumpy()):.6f}", flush=True)
        print(f"epoch: {epoch} skipped steps (overflow): {skipped}, loss scale: "
              f"{float(scaler.scale_value.asnumpy()):g}", flush=True)
        if save_path:
            save_checkpoint(float16_checkpoint(net, optimizer, scaler), save_path)


def evaluate(net, test_set, dtype=ms.float16):
    """Held-out accuracy of ``net`` run in ``dtype``."""
    correct = total = 0
    for images, labels in test_set.create_tuple_iterator(num_epochs=1):
        predicted = ops.argmax(net(images.astype(dtype)).astype(ms.float32), dim=1)
        correct += int((predicted == labels).sum().asnumpy())
        total += labels.shape[0]
    return correct / total


class SaveEachEpoch(Callback):
    """Saves the network and optimizer to one path at the end of every epoch.

    mindspore_offload.save_checkpoint replaces the file only once the new one is complete
    on disk, so a run killed mid-save still leaves the previous epoch's checkpoint to
    --resume from (mindspore.save_checkpoint deletes the old file first).
    """

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_train_epoch_end(self, run_context):
        save_checkpoint(run_context.original_args().train_network, self.path)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None,
                        help="MNIST folder (train/ and test/ subfolders, or the four idx files); "
                             "default: scikit-learn's digits")
    parser.add_argument("--mode", choices=("graph", "pynative"), default="graph")
    parser.add_argument("--epochs", type=int, default=10,
                        help="0 evaluates only (e.g. with --resume)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=None,
                        help="peak learning rate, cosine-decayed to 1/100 of it; "
                             "default 0.005, or 0.1 with --group-params")
    parser.add_argument("--group-params", action="store_true",
                        help="conv params weight_decay 0.01, others lr 0.01, as in the docs")
    parser.add_argument("--save-checkpoint", metavar="PATH", default=None,
                        help="save the network and optimizer state (with float16, the loss scale too) "
                             "after every epoch, crash-safe: the file always holds a complete checkpoint")
    parser.add_argument("--resume", metavar="PATH", default=None,
                        help="load network and optimizer state (with float16, the loss scale too) "
                             "before training")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--optimizer", choices=("adam", "adamw"), default="adam",
                        help="adam (default): AdamOffload, nn.AdamOffload's rule. adamw: "
                             "AdamWeightDecayOffload, nn.AdamWeightDecay's rule (no bias correction, "
                             f"decoupled weight decay {ADAMW_WEIGHT_DECAY} without --group-params)")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                        help="float32 (default): float32 parameters, trained by Model.train, on any "
                             "backend. float16: float16 parameters with float32 master weights on the "
                             "host and dynamic loss scaling, on any backend, the CPU included (MindSpore's "
                             "CPU backend computes Dense and Conv2d in float16). bfloat16 is not offered: "
                             "the CPU backend has no bfloat16 MatMul or Conv2D kernel, so LeNet5 cannot run "
                             "in bfloat16 there (AdamOffload itself takes bfloat16 parameters)")
    args = parser.parse_args(argv)
    if args.epochs < 0:
        parser.error(f"--epochs must be >= 0, but got {args.epochs}")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, but got {args.batch_size}")
    if args.lr is None:
        # The grouped run keeps the docs' base rate of 0.1 (the conv group's); decayed
        # by the cosine schedule it trains LeNet5 on the digits to about 0.96.
        args.lr = 0.1 if args.group_params else 0.005
    return args


def main(argv=None):
    """Train and evaluate; returns the held-out accuracy."""
    args = parse_args(argv)
    ms.set_context(mode=ms.GRAPH_MODE if args.mode == "graph" else ms.PYNATIVE_MODE)
    ms.set_seed(args.seed)
    ds.config.set_seed(args.seed)
    print(f"mindspore_offload kernel: {kernel.active_isa()}, threads: {kernel.get_num_threads()}")

    train_set, test_set = load_data(args.data_dir, args.batch_size)
    steps = train_set.get_dataset_size()
    start_step = checkpoint_step(args.resume) if args.resume else 0
    learning_rate = learning_rate_schedule(args.lr, start_step, args.epochs * steps)
    net = LeNet5()
    if args.dtype == "float16":
        to_float16(net)
    optimizer = create_optimizer(net, learning_rate, args.group_params, args.optimizer)
    if args.resume:
        resume(net, optimizer, args.resume)
    if args.dtype == "float16":
        scaler = make_loss_scaler()
        if args.resume:
            resume_loss_scaler(scaler, args.resume)
        if args.epochs > 0:
            train_float16(net, optimizer, train_set, args.epochs, scaler, args.save_checkpoint)
        elif args.save_checkpoint:
            save_checkpoint(float16_checkpoint(net, optimizer, scaler), args.save_checkpoint)
        if args.save_checkpoint:
            print(f"saved checkpoint: {args.save_checkpoint}")
        accuracy = evaluate(net, test_set)
        print(f"accuracy: {accuracy:.4f}", flush=True)
        return accuracy
    loss_fn = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    model = ms.Model(net, loss_fn=loss_fn, optimizer=optimizer, metrics={"accuracy"})

    if args.epochs > 0:
        callbacks = [LossMonitor(max(1, steps // 4)), TimeMonitor(steps)]
        if args.save_checkpoint:
            callbacks.append(SaveEachEpoch(args.save_checkpoint))
        model.train(args.epochs, train_set, callbacks=callbacks, dataset_sink_mode=False)
    elif args.save_checkpoint:
        save_checkpoint(model.train_network, args.save_checkpoint)
    if args.save_checkpoint:
        print(f"saved checkpoint: {args.save_checkpoint}")
    accuracy = model.eval(test_set, dataset_sink_mode=False)["accuracy"]
    print(f"accuracy: {accuracy:.4f}", flush=True)
    return accuracy


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except ModuleNotFoundError as error:
        if error.name != "sklearn":
            raise
        sys.exit(str(error))  # the message says what to install; a traceback would bury it
