"""AdamWeightDecayOffload's checkpoints: nn.AdamWeightDecay's names and shapes, loading both ways, and a
resumed run equal in every bit to one that never stopped, whichever optimizer ran the first half."""
import pytest

ms = pytest.importorskip("mindspore")
from mindspore import nn  # noqa: E402

from mindspore_offload import AdamWeightDecayOffload, kernel, load_param_into_net_checked  # noqa: E402
from support import checkpoint_cells as cells  # noqa: E402

OPTIMIZERS = {"ours": AdamWeightDecayOffload, "mindspore": nn.AdamWeightDecay}
# MindSpore rounds as we do on CPUs without AVX-512 (docs/design.md): there its runs are ours, bit for bit.
BITWISE = "avx512" not in kernel.available_isas()

pytestmark = pytest.mark.usefixtures("graph_mode")


def make_cell(optimizer, seed=0):
    return cells.make_cell(OPTIMIZERS[optimizer], seed, learning_rate=0.01, weight_decay=0.05)


def test_names_and_shapes_equal_nn_adam_weight_decay(tmp_path):
    ours = cells.assert_same_names_and_shapes(make_cell("ours"), make_cell("mindspore"), tmp_path)
    assert any(name.startswith("adam_m.") for name in ours) and any(name.startswith("adam_v.") for name in ours)


PAIRS = [("ours", "ours"), ("ours", "mindspore"), ("mindspore", "ours")]


@pytest.mark.compat
@pytest.mark.parametrize("source, target", PAIRS, ids=[f"{s}-to-{t}" for s, t in PAIRS])
def test_checkpoint_loads_completely_across_implementations(source, target, tmp_path):
    cells.assert_loads_completely(make_cell, source, target, tmp_path)


@pytest.mark.compat
@pytest.mark.parametrize("first, then", [("ours", "ours"), ("mindspore", "ours"), ("ours", "mindspore")])
def test_resuming_equals_an_uninterrupted_run(first, then, tmp_path):
    resumed, straight = cells.resumed_and_straight(make_cell, first, then, tmp_path, load_param_into_net_checked)
    assert int(resumed["global_step"][0]) == 20
    cells.assert_same(resumed, straight, bitwise=BITWISE or first == then == "ours")
