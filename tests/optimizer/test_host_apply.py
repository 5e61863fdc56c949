"""The two ways the step reaches the parameter give the same bits: on the CPU backend the host kernel
adds the delta in the same pass (apply_on_host); on Ascend/GPU, and here with
MINDSPORE_OFFLOAD_HOST_APPLY=0, the custom op returns the delta and assign_add adds it."""
import numpy as np
import pytest

ms = pytest.importorskip("mindspore")
from mindspore import Tensor, nn  # noqa: E402

from mindspore_offload import AdamOffload  # noqa: E402

MODES = {"graph": ms.GRAPH_MODE, "pynative": ms.PYNATIVE_MODE}


def train(monkeypatch, host_apply, steps=12, **kwargs):
    monkeypatch.setenv("MINDSPORE_OFFLOAD_HOST_APPLY", host_apply)
    ms.set_seed(3)
    net = nn.SequentialCell(nn.Dense(37, 91), nn.ReLU(), nn.BatchNorm1d(91), nn.Dense(91, 13))
    params = net.trainable_params()
    groups = [{"params": params[:2], "weight_decay": 0.01}, {"params": params[2:], "lr": 0.005},
              {"order_params": params}]
    opt = AdamOffload(groups, learning_rate=0.01, **kwargs)
    assert opt.apply_on_host == (host_apply == "1")
    cell = nn.TrainOneStepCell(nn.WithLossCell(net, nn.MSELoss()), opt)
    rng = np.random.default_rng(4)
    for _ in range(steps):
        cell(Tensor(rng.standard_normal((16, 37)).astype(np.float32)),
             Tensor(rng.standard_normal((16, 13)).astype(np.float32)))
    return {p.name: p.asnumpy() for p in cell.get_parameters()}


@pytest.mark.parametrize("nesterov", [False, True], ids=["plain", "nesterov"])
@pytest.mark.parametrize("mode", MODES)
def test_host_apply_and_assign_add_give_the_same_bits(monkeypatch, mode, nesterov, tmp_path):
    monkeypatch.chdir(tmp_path)
    ms.set_context(mode=MODES[mode])
    fused = train(monkeypatch, "1", use_nesterov=nesterov)
    delta = train(monkeypatch, "0", use_nesterov=nesterov)
    assert fused.keys() == delta.keys()
    for name in fused:
        assert fused[name].tobytes() == delta[name].tobytes(), name
    assert fused["global_step"][0] == 12
