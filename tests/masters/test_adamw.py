"""16-bit parameters with float32 masters through AdamWeightDecayOffload: the same 16-bit gradients go to
the float32 path on float32 parameters holding the widened values and to the master path on float16 and
bfloat16 parameters; the masters must follow the float32 parameters bit for bit (the decay reads the
master), the 16-bit parameters be the masters rounded to nearest even, and every moment be equal."""
import pytest

import mindspore as ms

from support import masters
from support.masters import ADAMW_CASES, LAYOUT, Holder, initial_values, make_adamw_optimizer

MODES = pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE], ids=["graph", "pynative"])


def check_trajectory(case, layout):
    opt16 = masters.check_trajectory(make_adamw_optimizer, case, layout)
    assert all(m.name.startswith("adam_m.") for m in opt16.moment1)


@MODES
@pytest.mark.parametrize("case", ADAMW_CASES)
def test_masters_follow_the_float32_path_bit_for_bit(mode, case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ms.set_context(mode=mode)
    check_trajectory(ADAMW_CASES[case], LAYOUT)


@MODES
def test_device_path_assigns_the_new_parameter_in_the_graph(mode, tmp_path, monkeypatch):
    """MINDSPORE_OFFLOAD_HOST_APPLY=0: the ops return the new values and the graph assigns them, as on a
    device backend (float16 only: MindSpore's CPU backend has no bfloat16 Assign)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MINDSPORE_OFFLOAD_HOST_APPLY", "0")
    ms.set_context(mode=mode)
    layout = {k: v for k, v in LAYOUT.items() if v[0] != ms.bfloat16}
    check_trajectory(ADAMW_CASES["decay"], layout)


def test_memory_report_counts_the_parameter_crossing_down():
    from mindspore_offload import AdamWeightDecayOffload

    holder = Holder(initial_values(), False)
    report = AdamWeightDecayOffload(holder.params).memory_report()
    assert report["by_dtype"]["float32"]["per_element"] == dict(device=12, host=8, across=12)
    assert report["by_dtype"]["float16"]["per_element"] == dict(device=6, host=12, across=6)
    assert report["by_dtype"]["float32"]["bytes_across_per_step"] == 12 * 17
