"""LatestCheckpoint beside ModelCheckpoint in Model.train, and find_resume_checkpoint's choice of step."""
import os
import pathlib

import numpy as np
import pytest

ms = pytest.importorskip("mindspore")
import mindspore.dataset as ds  # noqa: E402
from mindspore import Tensor, nn  # noqa: E402
from mindspore.train.callback import CheckpointConfig, ModelCheckpoint  # noqa: E402

from mindspore_offload import (AdamOffload, LatestCheckpoint, find_resume_checkpoint,  # noqa: E402
                               load_float32_checkpoint, load_param_into_net_checked, save_checkpoint)
from mindspore_offload.latest import latest_checkpoint_path  # noqa: E402

pytestmark = pytest.mark.usefixtures("graph_mode")
STEPS_PER_EPOCH, EPOCHS = 4, 2


def train(directory):
    net = nn.Dense(6, 3)
    model = ms.Model(net, loss_fn=nn.MSELoss(), optimizer=AdamOffload(net.trainable_params(), learning_rate=0.01))
    rng = np.random.default_rng(0)
    data = ds.NumpySlicesDataset({"x": rng.standard_normal((STEPS_PER_EPOCH, 8, 6)).astype(np.float32),
                                  "y": rng.standard_normal((STEPS_PER_EPOCH, 8, 3)).astype(np.float32)}, shuffle=False)
    numbered = ModelCheckpoint("CKP", directory, CheckpointConfig(save_checkpoint_steps=2, keep_checkpoint_max=2))
    latest = LatestCheckpoint("CKP", directory, CheckpointConfig(save_checkpoint_steps=2,
                                                                 append_info=["epoch_num", "step_num"]))
    model.train(EPOCHS, data, callbacks=[numbered, latest], dataset_sink_mode=False)
    return model, latest


def test_latest_and_previous_beside_model_checkpoints_numbered_files(tmp_path):
    model, latest = train(str(tmp_path))
    steps = STEPS_PER_EPOCH * EPOCHS
    assert latest.latest_path == latest_checkpoint_path(tmp_path, "CKP")
    names = sorted(n for n in os.listdir(tmp_path) if n.endswith(".ckpt"))
    numbered = [n for n in names if n.startswith("CKP-")]
    assert len(numbered) == 2, names  # keep_checkpoint_max counted only ModelCheckpoint's own files
    assert sorted(set(names) - set(numbered)) == ["CKP_latest.ckpt", "CKP_previous.ckpt"]
    saved = ms.load_checkpoint(str(tmp_path / "CKP_latest.ckpt"))
    for p in model.train_network.get_parameters():
        np.testing.assert_array_equal(saved[p.name].asnumpy(), p.asnumpy(), err_msg=p.name)
    assert int(saved["step_num"].asnumpy()) == steps and int(saved["epoch_num"].asnumpy()) == EPOCHS
    previous = ms.load_checkpoint(str(tmp_path / "CKP_previous.ckpt"))
    assert int(previous["global_step"].asnumpy()[0]) == steps - 2
    # The numbered file of the last step holds the same parameters as the latest file.
    last = ms.load_checkpoint(str(tmp_path / f"CKP-{EPOCHS}_{STEPS_PER_EPOCH}.ckpt"))
    for name in ("weight", "moment1.weight", "global_step"):
        np.testing.assert_array_equal(last[name].asnumpy(), saved[name].asnumpy())
    assert find_resume_checkpoint(str(tmp_path), "CKP") == (steps, [str(tmp_path / "CKP_latest.ckpt")])


def save_step(directory, step, rank, group_size, previous=False):
    path = latest_checkpoint_path(directory, "CKP", rank, group_size, previous=previous)
    save_checkpoint([{"name": "global_step", "data": Tensor(np.array([step], np.int32))}], path)
    return path


def test_ranks_killed_at_different_steps_resume_from_the_newest_common_one(tmp_path):
    d = str(tmp_path)
    save_step(d, 6, 0, 2)
    r0_5 = save_step(d, 5, 0, 2, previous=True)
    r1_5 = save_step(d, 5, 1, 2)  # rank 1 died while saving step 6
    save_step(d, 4, 1, 2, previous=True)
    assert find_resume_checkpoint(d, "CKP", group_size=2) == (5, [r0_5, r1_5])


def test_killed_between_the_two_renames_the_previous_file_is_used(tmp_path):
    d = str(tmp_path)
    r0 = save_step(d, 3, 0, 2, previous=True)  # 'latest' already moved to 'previous', the new one not yet in
    r1 = save_step(d, 3, 1, 2)
    assert find_resume_checkpoint(d, "CKP", group_size=2) == (3, [r0, r1])


def test_no_common_step_or_another_rank_count_is_refused(tmp_path):
    d = str(tmp_path)
    save_step(d, 3, 0, 2)
    with pytest.raises(FileNotFoundError, match=r"no step is saved by all 2 rank\(s\).*\[\[3\], \[\]\]"):
        find_resume_checkpoint(d, "CKP", group_size=2)
    with pytest.raises(FileNotFoundError, match="no step is saved by all 4 rank"):
        find_resume_checkpoint(d, "CKP", group_size=4)
    pathlib.Path(latest_checkpoint_path(d, "CKP", 1, 2)).write_bytes(b"torn")  # unreadable: not a candidate
    with pytest.raises(FileNotFoundError):
        find_resume_checkpoint(d, "CKP", group_size=2)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(prefix="a-b"), ValueError, "'prefix' must be a non-empty string without '/' or '-'"),
    (dict(prefix="a/b"), ValueError, "'prefix' must be"),
    (dict(config=3), TypeError, "'config' must be a CheckpointConfig"),
    (dict(config=CheckpointConfig(async_save=True)), ValueError, "'async_save' must be off"),
])
def test_errors(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        LatestCheckpoint(directory=str(tmp_path), **kwargs)


def test_rank_out_of_range_is_refused():
    with pytest.raises(ValueError, match=r"'rank' must be in \[0, 2\), but got 2"):
        latest_checkpoint_path(".", "CKP", 2, 2)


class _Train(nn.Cell):
    """A Dense(6, 3) and its AdamOffload under one cell, in ``dtype``; checkpoint names "weight",
    "moment1.weight", ... (and "master.weight" for 16 bits)."""

    def __init__(self, dtype=ms.float32, seed=0):
        super().__init__(auto_prefix=False)
        self.net = nn.Dense(6, 3)
        rng = np.random.default_rng(seed)
        for p in self.net.trainable_params():
            p.set_dtype(dtype)
            p.set_data(Tensor(rng.standard_normal(p.shape).astype(np.float32)).astype(dtype))
        self.opt = AdamOffload(self.net.trainable_params(), learning_rate=0.01)

    def step(self, seed):
        rng = np.random.default_rng(seed)
        self.opt(tuple(Tensor(rng.standard_normal(p.shape).astype(np.float32)).astype(p.dtype)
                       for p in self.net.trainable_params()))


def test_every_path_found_loads_through_the_checked_loaders(tmp_path):
    """find_resume_checkpoint(format="safetensors") returns .safetensors paths: both loaders read them in
    the format their name ends with."""
    source = _Train()
    for step in range(3):
        source.step(step)
    for rank in range(2):
        save_checkpoint(source, latest_checkpoint_path(tmp_path, "CKP", rank, 2, format="safetensors"),
                        format="safetensors")
    step, paths = find_resume_checkpoint(str(tmp_path), "CKP", group_size=2, format="safetensors")
    assert step == 3 and all(path.endswith("of2.safetensors") for path in paths)
    want = {p.name: p.asnumpy() for p in source.get_parameters()}
    for path in paths:
        target = _Train(seed=1)
        assert load_param_into_net_checked(target, path) == ([], [])
        for p in target.get_parameters():
            assert p.asnumpy().tobytes() == want[p.name].tobytes(), p.name
        half = _Train(ms.float16, seed=1)
        assert load_float32_checkpoint(half, path) == ([], [])
        params = {p.name: p.asnumpy() for p in half.get_parameters()}
        for name in ("weight", "bias"):
            assert params["master." + name].tobytes() == want[name].tobytes(), name
            assert params[name].tobytes() == want[name].astype(np.float16).tobytes(), name
