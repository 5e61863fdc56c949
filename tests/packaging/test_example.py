"""Tests of examples/lenet5.py: the digits path, the MNIST reader, checkpoints."""
import re
import struct
import subprocess
import sys

import numpy as np
import pytest

import mindspore as ms
import mindspore.dataset as ds

from support.examples import EXAMPLE, lenet5


@pytest.fixture(autouse=True)
def _isolate(tmp_path, monkeypatch):
    """Run in tmp_path, where MindSpore writes compile artefacts (rank_0/, kernel_meta/), and
    give back the execution mode and dataset seed that main() sets, for the test files after
    this one."""
    monkeypatch.chdir(tmp_path)
    mode, seed = ms.get_context("mode"), ds.config.get_seed()
    yield
    ms.set_context(mode=mode)
    ds.config.set_seed(seed)


# --- digits ---------------------------------------------------------------------------

def test_digits_split_is_fixed_and_mnist_like():
    (x_train, y_train), (x_test, y_test) = lenet5.digits_arrays()
    assert x_train.shape == (1437, 8, 8, 1) and x_test.shape == (360, 8, 8, 1)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.uint32
    assert x_train.max() == 255 and x_train.min() == 0
    assert sorted(np.unique(y_test)) == list(range(10))
    (x_again, _), (x_test_again, y_test_again) = lenet5.digits_arrays()
    np.testing.assert_array_equal(x_again, x_train)
    np.testing.assert_array_equal(x_test_again, x_test)
    np.testing.assert_array_equal(y_test_again, y_test)


def test_pipeline_shapes():
    train, test = lenet5.load_data(None, batch_size=32)
    assert train.get_dataset_size() == 1437 // 32
    assert test.get_dataset_size() == -(-360 // 32)
    batch = next(train.create_dict_iterator(num_epochs=1, output_numpy=True))
    assert batch["image"].shape == (32, 1, 32, 32)
    assert batch["image"].dtype == np.float32
    assert batch["label"].dtype == np.int32


def test_default_path_as_script(tmp_path):
    """The command line run: kernel line first, accuracy line last."""
    result = subprocess.run([sys.executable, str(EXAMPLE), "--epochs", "3"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    lines = result.stdout.strip().splitlines()
    assert re.fullmatch(r"mindspore_offload kernel: \S+, threads: \d+", lines[0]), lines[0]
    assert any(line.startswith("epoch: 3 step:") for line in lines)
    match = re.fullmatch(r"accuracy: (0\.\d{4}|1\.0000)", lines[-1])
    assert match, lines[-1]
    # 3 of the default 10 epochs reach about 0.93; the full run reaches 0.95 or more.
    assert float(match.group(1)) > 0.85


def test_group_params_and_pynative():
    accuracy = lenet5.main(["--group-params", "--mode", "pynative", "--epochs", "2"])
    assert accuracy > 0.8


# --- MNIST reader ---------------------------------------------------------------------

def _write_idx(path, array):
    """Write array (uint8) in MNIST's idx format: magic, big-endian sizes, then the bytes."""
    magic = 0x0800 | array.ndim
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _mnist_like_digits(images):
    """8x8 digits as MNIST's 28x28: scale 3x to 24x24 and pad 2, centred like MNIST."""
    big = np.kron(images[..., 0], np.ones((3, 3), dtype=np.uint8))
    return np.pad(big, ((0, 0), (2, 2), (2, 2)))


def _write_mnist(root, layout, n_train=1000, n_test=300):
    (x_train, y_train), (x_test, y_test) = lenet5.digits_arrays()
    data = {"train": (_mnist_like_digits(x_train[:n_train]), y_train[:n_train]),
            "test": (_mnist_like_digits(x_test[:n_test]), y_test[:n_test])}
    for usage, (images, labels) in data.items():
        folder = root / usage if layout == "subfolders" else root
        folder.mkdir(parents=True, exist_ok=True)
        image_file, label_file = lenet5.MNIST_FILES[usage]
        _write_idx(folder / image_file, images)
        _write_idx(folder / label_file, labels)
    return data


@pytest.mark.parametrize("layout", ["subfolders", "flat"])
def test_mnist_reader_reads_idx_files(tmp_path, layout):
    data = _write_mnist(tmp_path, layout)
    for usage, (images, labels) in data.items():
        dataset = lenet5.mnist_dataset(str(tmp_path), usage)
        assert dataset.get_dataset_size() == len(labels)
        rows = list(dataset.create_tuple_iterator(num_epochs=1, output_numpy=True))
        read_images = np.stack([image for image, _ in rows])
        read_labels = np.array([label for _, label in rows])
        assert read_images.shape == (len(labels), 28, 28, 1)
        np.testing.assert_array_equal(read_images[..., 0], images)
        np.testing.assert_array_equal(read_labels, labels)


def test_mnist_missing_files_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        lenet5.mnist_dir(str(tmp_path), "test")
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="gunzip"):
        lenet5.mnist_dir(str(tmp_path), "train")


def test_mnist_trains(tmp_path):
    _write_mnist(tmp_path, "subfolders")
    accuracy = lenet5.main(["--data-dir", str(tmp_path), "--epochs", "4"])
    assert accuracy > 0.8


# --- checkpoints ----------------------------------------------------------------------

def _checkpoint(path):
    return {name: param.asnumpy() for name, param in ms.load_checkpoint(str(path)).items()}


def test_checkpoint_save_and_resume(tmp_path):
    first, reloaded, continued = (tmp_path / f"{name}.ckpt"
                                  for name in ("first", "reloaded", "continued"))
    accuracy = lenet5.main(["--epochs", "1", "--save-checkpoint", str(first)])
    saved = _checkpoint(first)

    weights = [p.name for p in lenet5.LeNet5().trainable_params()]
    steps = 1437 // 32
    for name in weights:
        assert name in saved
        assert f"moment1.{name}" in saved and f"moment2.{name}" in saved
        assert np.any(saved[f"moment1.{name}"] != 0)
    assert saved["global_step"] == steps
    np.testing.assert_allclose(saved["beta1_power"], 0.9 ** steps, rtol=1e-5)
    np.testing.assert_allclose(saved["beta2_power"], 0.999 ** steps, rtol=1e-5)

    # --epochs 0: load, evaluate, save again. Everything loaded must equal what was saved.
    assert lenet5.main(["--resume", str(first), "--epochs", "0",
                        "--save-checkpoint", str(reloaded)]) == accuracy
    again = _checkpoint(reloaded)
    assert again.keys() == saved.keys()
    for name, value in saved.items():
        np.testing.assert_array_equal(again[name], value, err_msg=name)

    # Training on from the checkpoint continues its step count and bias correction.
    lenet5.main(["--resume", str(first), "--epochs", "1", "--save-checkpoint", str(continued)])
    after = _checkpoint(continued)
    assert after["global_step"] == 2 * steps
    # Saved through mindspore_offload.save_checkpoint: no temporary is left beside the files.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["continued.ckpt", "first.ckpt", "reloaded.ckpt"]
    np.testing.assert_allclose(after["beta1_power"], 0.9 ** (2 * steps), rtol=1e-5)


def test_resume_rejects_a_mismatched_checkpoint(tmp_path):
    net = lenet5.LeNet5()
    path = tmp_path / "net_only.ckpt"
    ms.save_checkpoint(net, str(path))
    optimizer = lenet5.create_optimizer(net, 0.002)
    with pytest.raises(ValueError, match="moment1.conv1.weight"):
        lenet5.resume(net, optimizer, str(path))


def test_help_says_what_each_dtype_offers_where():
    result = subprocess.run([sys.executable, str(EXAMPLE), "--help"], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    text = " ".join(result.stdout.split())  # argparse wraps the help text
    assert "{float32,float16}" in text
    for words in ("float32 master weights", "dynamic loss scaling", "computes Dense and Conv2d in float16",
                  "bfloat16 is not offered", "no bfloat16 MatMul", "crash-safe", "loss scale"):
        assert words in text, (words, text)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_every_epoch_is_saved_crash_safely(tmp_path, monkeypatch, dtype):
    """After each epoch the file exists and holds that epoch's state, written by mindspore_offload's
    crash-safe save (the float16 run saved once, at the end, with ms.save_checkpoint)."""
    path = tmp_path / "run.ckpt"
    saved = []

    def spy(save_obj, ckpt_file_name, *args, **kwargs):
        written = lenet5_save(save_obj, ckpt_file_name, *args, **kwargs)
        saved.append(_checkpoint(written))
        return written

    lenet5_save = lenet5.save_checkpoint
    monkeypatch.setattr(lenet5, "save_checkpoint", spy)
    lenet5.main(["--dtype", dtype, "--epochs", "2", "--batch-size", "128", "--save-checkpoint", str(path)])
    steps = 1437 // 128
    assert [state["global_step"].item() for state in saved] == [steps, 2 * steps]
    assert _checkpoint(path).keys() == saved[-1].keys()
    for name, value in _checkpoint(path).items():
        np.testing.assert_array_equal(value, saved[-1][name], err_msg=name)
    if dtype == "float16":
        # The loss scaler's state: the scale and the finite steps counted towards its next growth (window 50).
        assert [(s["loss_scale.scale_value"].item(), s["loss_scale.counter"].item()) for s in saved] == \
            [(4096.0, steps), (4096.0, 2 * steps)]
        assert any(name.startswith("master.") for name in saved[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt"]
