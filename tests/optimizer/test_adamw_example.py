"""examples/lenet5.py --optimizer adamw: AdamWeightDecayOffload trains LeNet5 on the digits to the example's
bar, 0.95 held-out accuracy, with float32 parameters (Model.train) and float16 ones (float32 masters,
dynamic loss scaling), and its checkpoint carries nn.AdamWeightDecay's names."""
import pytest

import mindspore as ms
import mindspore.dataset as ds

from support.examples import lenet5


@pytest.fixture(autouse=True)
def _isolate(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mode, seed = ms.get_context("mode"), ds.config.get_seed()
    yield
    ms.set_context(mode=mode)
    ds.config.set_seed(seed)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_full_run_reaches_the_bar(dtype, tmp_path):
    path = tmp_path / f"adamw_{dtype}.ckpt"
    accuracy = lenet5.main(["--optimizer", "adamw", "--dtype", dtype, "--save-checkpoint", str(path)])
    assert accuracy >= 0.95
    names = set(ms.load_checkpoint(str(path)))
    assert "adam_m.conv1.weight" in names and "adam_v.fc3.bias" in names and "global_step" in names
    assert not any(name.startswith(("moment1.", "beta1_power")) for name in names)
