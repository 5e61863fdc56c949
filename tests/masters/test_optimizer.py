"""16-bit parameters with float32 masters through AdamOffload: trajectory, errors, memory report.

Trajectory: the same 16-bit gradients for 20 steps go to (a) the float32 path on float32 parameters
holding the widened values and (b) the master path on float16/bfloat16 parameters (beside a float32
one). (b)'s masters must equal (a)'s parameters bit for bit, (b)'s 16-bit parameters must be the
masters rounded to nearest even, and (b)'s float32 parameter and all moments must equal (a)'s.
"""
import numpy as np
import pytest

import mindspore as ms
from mindspore import Parameter, Tensor

from mindspore_offload import AdamOffload
from support.masters import CASES, LAYOUT, Holder, bits, check_trajectory, initial_values, make_optimizer

MODES = pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE], ids=["graph", "pynative"])


@pytest.mark.compat
@MODES
@pytest.mark.parametrize("case", CASES)
def test_masters_follow_the_float32_path_bit_for_bit(mode, case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ms.set_context(mode=mode)
    check_trajectory(make_optimizer, CASES[case], LAYOUT)


@MODES
def test_device_path_assigns_the_new_parameter_in_the_graph(mode, tmp_path, monkeypatch):
    """MINDSPORE_OFFLOAD_HOST_APPLY=0: the op returns the 16-bit value and the graph assigns it, as on a
    device backend. (MindSpore's CPU backend has no bfloat16 Assign, so float16 only here.)"""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MINDSPORE_OFFLOAD_HOST_APPLY", "0")
    ms.set_context(mode=mode)
    layout = {k: v for k, v in LAYOUT.items() if v[0] != ms.bfloat16}
    check_trajectory(make_optimizer, CASES["nesterov+decay+scale"], layout)


def test_bad_parameter_dtypes_are_refused_naming_the_parameter():
    for dtype in (ms.float64, ms.int32):
        p = Parameter(Tensor(np.zeros(3), dtype), name="odd")
        with pytest.raises(TypeError, match=r"parameter 'odd' is .*float32, float16 and bfloat16"):
            AdamOffload([p])


def test_a_master_name_taken_by_a_parameter_is_refused():
    p16 = Parameter(Tensor(np.zeros(3), ms.float16), name="w")
    taken = Parameter(Tensor(np.zeros(3), ms.float32), name="master.w")
    with pytest.raises(ValueError, match="master.w"):
        AdamOffload([p16, taken])


@MODES
def test_a_gradient_of_another_dtype_fails_at_compile_with_nothing_changed(mode, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ms.set_context(mode=mode)
    holder = Holder(initial_values(), False)
    opt = AdamOffload(holder.params)
    before = {p.name: bits(p).copy() for p in opt.get_parameters()}
    before.update({p.name: bits(p).copy() for p in holder.params})
    grads = tuple(Tensor(np.ones(LAYOUT[k][1], np.float32)) for k in LAYOUT)  # float32 for every one
    with pytest.raises(TypeError, match=r"gradient of the Float16 parameter 'w16' must be Float16"):
        opt(grads)
    after = {p.name: bits(p) for p in list(opt.get_parameters()) + holder.params}
    for name, value in before.items():
        np.testing.assert_array_equal(after[name], value, err_msg=name)


def test_memory_report():
    holder = Holder(initial_values(), False)
    report = AdamOffload(holder.params).memory_report()
    n16 = 35 + 9
    assert report["by_dtype"]["float16"]["device_bytes"] == 6 * n16
    assert report["by_dtype"]["float16"]["host_bytes"] == 12 * n16
    assert report["by_dtype"]["bfloat16"]["bytes_across_per_step"] == 6 * 33
    assert report["by_dtype"]["float32"]["device_bytes"] == 12 * 17
    assert report["total"]["elements"] == n16 + 33 + 17


def test_memory_report_counts_this_ranks_slices_when_sharded():
    """Sharded over 3 ranks, a parameter of at least min_size elements keeps ceil(size/3) on the host."""
    from mindspore_offload import _masters, _sharding

    params = [Parameter(Tensor(np.zeros(n, np.float32)).astype(dtype), name=f"p{i}")
              for i, (n, dtype) in enumerate([(100, ms.float16), (10, ms.float16), (64, ms.float32),
                                              (7, ms.bfloat16)])]
    report = _masters.memory_report(params, _sharding.Layout(rank=1, ranks=3, min_size=64))
    f16, f32, bf16 = (report["by_dtype"][k] for k in ("float16", "float32", "bfloat16"))
    assert f16["host_bytes"] == 12 * (34 + 10) and f16["bytes_across_per_step"] == 6 * (34 + 10)
    assert f16["device_bytes"] == 6 * 110 and f16["sharded_elements"] == 100
    assert f32["host_bytes"] == 8 * 22 and f32["bytes_across_per_step"] == 8 * 22 and f32["device_bytes"] == 12 * 64
    assert bf16["host_bytes"] == 12 * 7 and bf16["sharded_elements"] == 0
    assert report["total"]["sharded_elements"] == 164
    assert _masters.memory_report(params) == _masters.memory_report(params, None)
    assert _masters.memory_report(params)["by_dtype"]["float16"]["host_bytes"] == 12 * 110


def test_bfloat16_with_host_apply_off_on_the_cpu_is_refused_naming_the_fix(monkeypatch):
    """The graph would have to assign the bfloat16 value, which MindSpore's CPU backend cannot."""
    monkeypatch.setenv("MINDSPORE_OFFLOAD_HOST_APPLY", "0")
    half = Parameter(Tensor(np.zeros(3), ms.float16), name="h")
    brain = Parameter(Tensor(np.zeros(3, np.float32)).astype(ms.bfloat16), name="b")
    with pytest.raises(ValueError, match=r"bfloat16 parameter 'b' .*Unset MINDSPORE_OFFLOAD_HOST_APPLY"):
        AdamOffload([half, brain])
    AdamOffload([half])  # float16 can be assigned there
