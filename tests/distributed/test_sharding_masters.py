"""float16/bfloat16 parameters under msrun (DATA_PARALLEL on the CPU), unsharded and with shard_state=True.

Two msrun launches (tests/workers/shard16_worker.py trains): two ranks (a float16 network through TrainOneStepCell
and a "fed" set of bfloat16, float16 and float32 parameters, in GRAPH_MODE and PyNative, checkpoints
half-way and resumes across layouts) and three ranks (the fed set). Every comparison is bit for bit:
- sharded equals unsharded, every parameter, master and moment, on every rank;
- the unsharded msrun run equals a single-process run here fed the same averaged gradients, and its
  masters equal float32 parameters trained by the float32 path on the widened gradients;
- what MindSpore's gradient reducer makes of 16-bit gradients (the mean taken in float32, rounded once).
"""

import numpy as np
import pytest

pytest.importorskip("mindspore")

import mindspore as ms  # noqa: E402
from mindspore import Parameter, Tensor, nn  # noqa: E402
from mindspore.common.np_dtype import bfloat16  # noqa: E402

from mindspore_offload import AdamOffload, _sharding  # noqa: E402
from mindspore_offload import checkpoint as mso_checkpoint  # noqa: E402
from support import sharded_masters as shared  # noqa: E402
from support.msrun_launch import launch_ok  # noqa: E402

FIRST_GROUP = ("net.fc1.weight", "net.fc1.bias", "a16", "f32")  # shared.optimizer_for's first group


def _launch(workers, out):
    return launch_ok("shard16_worker.py", [out], workers, out, timeout=300)


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    return _launch(2, tmp_path_factory.mktemp("shard16_2"))


@pytest.fixture(scope="module")
def three(tmp_path_factory, two):  # after two: the launches do not overlap
    return _launch(3, tmp_path_factory.mktemp("shard16_3"))


def _load(out, case, rank):
    with np.load(out / f"{case}_rank{rank}.npz") as data:
        return {name: data[name] for name in data.files}


def _split(values):
    """(the cell's state, the averaged gradients by step and parameter name)."""
    grads = {}
    for name, value in values.items():
        if name.startswith("grad"):
            step, param = name[len("grad"):].split(":", 1)
            grads.setdefault(int(step), {})[param] = value
    return {k: v for k, v in values.items() if not k.startswith("grad")}, grads


def _whole(out, case, ranks):
    """The run's state as an unsharded rank holds it, after checking the ranks agree on all the rest
    (the averaged gradients included)."""
    values = [_load(out, case, rank) for rank in range(ranks)]
    for rank, value in enumerate(values):
        if _sharding.LAYOUT_NAME in value:
            assert value[_sharding.LAYOUT_NAME].tolist() == [rank, ranks, shared.SHARD_MIN_SIZE], (case, rank)
    for name, value in values[0].items():
        if not name.startswith(("moment", "master")) and name != _sharding.LAYOUT_NAME:
            for rank, other in enumerate(values[1:], 1):
                assert other[name].tobytes() == value.tobytes(), f"{case}: rank {rank} differs on '{name}'"
    states = [_split(v)[0] for v in values]
    return mso_checkpoint.merge_states(states), _split(values[0])[1]


def _assert_same_bits(expected, got, what):
    assert expected.keys() == got.keys(), (what, sorted(set(expected) ^ set(got)))
    for name in expected:
        assert expected[name].shape == got[name].shape, (what, name)
        assert expected[name].tobytes() == got[name].tobytes(), f"{what}: '{name}' differs"


def _sizes(net):
    cell = shared.Loss(shared.Net16()) if net == "net" else shared.Holder()
    return {p.name: (p.dtype, int(p.size)) for p in cell.trainable_params()}


def _assert_slices(out, case, ranks, net):
    for rank in range(ranks):
        state = _split(_load(out, case, rank))[0]
        for name, (dtype, size) in _sizes(net).items():
            sliced = _sharding.is_sharded(size, ranks, shared.SHARD_MIN_SIZE)
            prefixes = ("moment1.", "moment2.") + (("master.",) if dtype != ms.float32 else ())
            for prefix in prefixes:
                want = (_sharding.slice_length(size, ranks),) if sliced else state[name].shape
                assert state[prefix + name].shape == want, (case, prefix + name)
            assert sliced == (size >= shared.SHARD_MIN_SIZE)
    assert any(size < shared.SHARD_MIN_SIZE and dtype != ms.float32 for dtype, size in _sizes(net).values())


CASES = [("graph", "net"), ("graph", "fed"), ("pynative", "net"), ("pynative", "fed")]


def _case(mode, net, layout):
    return f"{net}_{layout}" if mode == "graph" else f"pynative_{net}_{layout}"


@pytest.mark.slow
@pytest.mark.parametrize("mode, net", CASES)
def test_two_ranks_sharded_equals_unsharded(two, mode, net):
    plain, plain_grads = _whole(two, _case(mode, net, "plain"), 2)
    shard, shard_grads = _whole(two, _case(mode, net, "shard"), 2)
    _assert_same_bits(plain, shard, f"{mode} {net}")
    _assert_slices(two, _case(mode, net, "shard"), 2, net)
    for step in plain_grads:
        _assert_same_bits(plain_grads[step], shard_grads[step], f"step {step}'s gradients")
    assert int(plain["global_step"][0]) == shared.STEPS
    assert any(name.startswith("master.") for name in plain)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["plain", "shard"])
def test_as_on_a_device_backend_the_same_bits(two, layout):
    """MINDSPORE_OFFLOAD_HOST_APPLY=0: the op returns the new 16-bit value (sharded: its slice, gathered in
    float16) and the graph assigns it; the same bits as the host writing the parameter itself."""
    want, want_grads = _whole(two, "net_plain", 2)
    got, got_grads = _whole(two, f"device_net_{layout}", 2)
    _assert_same_bits(want, got, f"device_net_{layout}")
    for step in want_grads:
        _assert_same_bits(want_grads[step], got_grads[step], f"step {step}'s gradients")


# --- a single process fed the averaged gradients ---

def _as_tensor(bits, dtype):
    if dtype == ms.float32:
        return Tensor(bits.astype(np.float32))
    return Tensor(bits.view(np.float16 if dtype == ms.float16 else bfloat16))


def _replay(net, grads, nesterov, float32_everywhere=False, write_at=None):
    """The worker's optimizer on the worker's starting values, stand-alone, fed the averaged gradients
    (widened to float32 on float32 parameters with ``float32_everywhere``); with ``write_at``, every
    parameter is written before that step as shared.overwrite writes it. Returns its state."""
    source = shared.Loss(shared.Net16()) if net == "net" else shared.Holder()
    params = []
    for p in source.trainable_params():
        value = p.asnumpy()
        params.append(Parameter(Tensor(value.astype(np.float32) if float32_everywhere else value), name=p.name))
    optimizer = shared.optimizer_for(params, [p for p in params if p.name in FIRST_GROUP], net, False, nesterov)
    for step in sorted(grads):
        if step == write_at:
            shared.overwrite(params, float32_everywhere)
        optimizer(tuple(_as_tensor(grads[step][p.name], ms.float32 if float32_everywhere else source_dtype)
                        for p, source_dtype in zip(params, [q.dtype for q in source.trainable_params()])))
    return {p.name: shared.raw(p) for p in list(params) + list(optimizer.get_parameters())}


def _widened(bits, dtype):
    if dtype == ms.float32:
        return bits.astype(np.float32)
    return bits.view(np.float16 if dtype == ms.float16 else bfloat16).astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("mode, net", CASES)
def test_unsharded_msrun_equals_one_process_fed_the_averaged_gradients(two, mode, net, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    ms.set_context(mode=ms.GRAPH_MODE if mode == "graph" else ms.PYNATIVE_MODE)
    plain, grads = _whole(two, _case(mode, net, "plain"), 2)
    nesterov = mode == "pynative"
    replayed = _replay(net, grads, nesterov)
    for name, value in replayed.items():
        assert plain[name].tobytes() == value.tobytes(), f"{mode} {net}: '{name}' differs from the replay"
    # The masters follow float32 parameters fed the widened gradients, bit for bit.
    float32 = _replay(net, {s: {k: _widened(g, _sizes(net)[k][0]) for k, g in step.items()}
                            for s, step in grads.items()}, nesterov, float32_everywhere=True)
    checked = 0
    for name, (dtype, _) in _sizes(net).items():
        if dtype != ms.float32:
            assert plain["master." + name].tobytes() == float32[name].tobytes(), f"master.{name}"
            for moment in ("moment1.", "moment2."):
                assert plain[moment + name].tobytes() == float32[moment + name].tobytes(), moment + name
            checked += 1
    assert checked >= 2


@pytest.mark.slow
def test_the_gradient_reducer_averages_16_bit_gradients_in_float32(two):
    """DistributedGradReducer (TrainOneStepCell's in DATA_PARALLEL) casts 16-bit gradients to float32,
    sums them over the ranks (AllReduce) and multiplies by 1/N in float32, then rounds to the 16-bit type
    once: two float16 60000s average to 60000, where a float16 sum would overflow."""
    reduced = _load(two, "reducer", 0)
    assert reduced["float16"].view(np.float16)[0] == 60000.0
    np.testing.assert_array_equal(reduced["float16"].view(np.float16)[1:], np.float16([1.0 + 2.0**-11, 2.0**-25]))
    got = reduced["bfloat16"].view(bfloat16).astype(np.float32)
    assert np.isinf(got[0])  # 3e38 + 3e38 overflows float32 itself
    np.testing.assert_array_equal(got[1:], [1.0, 258.0])  # 1 + 2**-8 rounds to even in bfloat16
    # and the fed run's averaged gradients are exactly that, every step
    _, grads = _whole(two, "fed_plain", 2)
    for step, by_name in grads.items():
        local = [shared.fed_gradients(rank, step) for rank in range(2)]
        for name, (dtype, _) in shared.FED.items():
            kind = np.float32 if dtype == "float32" else np.float16 if dtype == "float16" else bfloat16
            mean = (local[0][name].astype(kind).astype(np.float32) + local[1][name].astype(kind).astype(np.float32))
            want = (mean * np.float32(0.5)).astype(kind)
            got = by_name[name].view(kind) if kind is not np.float32 else by_name[name]
            assert want.tobytes() == np.ascontiguousarray(got).tobytes(), (step, name)


# --- checkpoints ---

@pytest.mark.slow
@pytest.mark.parametrize("case", ["net_shard_to_plain", "net_plain_to_shard", "net_shard_to_same",
                                  "net_float32_to_shard"])
def test_resuming_across_layouts_equals_an_uninterrupted_run(two, case):
    _assert_same_bits(_whole(two, "net_plain", 2)[0], _whole(two, case, 2)[0], case)


@pytest.mark.slow
def test_the_merged_checkpoint_is_the_unsharded_one_masters_included(two):
    merged = ms.load_checkpoint(str(two / "merged.ckpt"))
    plain = ms.load_checkpoint(str(two / "net_plain_rank0.ckpt"))
    assert merged.keys() == plain.keys() and "master.net.fc2.weight" in plain
    for name in plain:
        assert merged[name].asnumpy().tobytes() == plain[name].asnumpy().tobytes(), name


@pytest.mark.slow
@pytest.mark.parametrize("net", ["net", "fed"])
def test_the_merge_command_joins_master_slices_into_the_unsharded_checkpoint(two, net, tmp_path, capsys):
    merged = tmp_path / "merged.ckpt"
    ranks = [str(two / f"{net}_shard_rank{r}.ckpt") for r in (1, 0)]  # any order: each file records its rank
    assert mso_checkpoint._main(["merge", str(merged)] + ranks) == 0
    got, plain = ms.load_checkpoint(str(merged)), ms.load_checkpoint(str(two / f"{net}_plain_rank0.ckpt"))
    assert got.keys() == plain.keys() and sum(name.startswith("master.") for name in plain) >= 5
    for name in plain:
        assert got[name].dtype == plain[name].dtype, name
        assert shared.raw(got[name]).tobytes() == shared.raw(plain[name]).tobytes(), name


@pytest.mark.slow
def test_a_slice_checkpoint_loaded_unsharded_is_refused_naming_the_fix(two):
    for rank in range(2):
        state = _load(two, "net_slices_into_plain", rank)
        message = str(state["message"])
        assert "nothing was loaded" in message and "python -m mindspore_offload.checkpoint merge" in message
        assert "'master.net.fc2.weight'" in message and "'master.net.scale'" not in message
        assert bool(state["unchanged"])


@pytest.mark.slow
def test_another_ranks_file_is_refused_naming_both_layouts(two):
    for rank in range(2):
        state = _load(two, "net_other_rank", rank)
        message = str(state["message"])
        assert (f"holds the optimizer state of rank {1 - rank} of 2 (threshold 4 elements), but this run is rank "
                f"{rank} of 2 (threshold 4 elements); nothing was loaded") in message, message
        assert "python -m mindspore_offload.checkpoint merge" in message
        assert bool(state["unchanged"])


@pytest.mark.slow
def test_a_gradient_of_another_shape_is_refused_naming_the_parameter(two):
    for rank in range(2):
        state = _load(two, "fed_bad_gradient", rank)
        message = str(state["message"])
        assert "a gradient of shape (1002,) does not match its parameter 'b16' of shape (1003,)" in message
        assert bool(state["unchanged"])


# --- three ranks ---

@pytest.mark.slow
@pytest.mark.parametrize("net", ["net", "fed"])
def test_three_ranks_sharded_equals_unsharded_and_the_replay(three, net, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    ms.set_context(mode=ms.GRAPH_MODE)
    plain, grads = _whole(three, f"{net}_plain", 3)
    _assert_same_bits(plain, _whole(three, f"{net}_shard", 3)[0], "three ranks")
    _assert_slices(three, f"{net}_shard", 3, net)
    replayed = _replay(net, grads, nesterov=net == "fed")
    for name, value in replayed.items():
        assert plain[name].tobytes() == value.tobytes(), f"three ranks: '{name}' differs from the replay"


# --- in one process ---

def test_stand_alone_shard_state_with_16_bit_parameters_changes_nothing():
    params = [Parameter(Tensor(np.zeros((300, 300), np.float16)), name="w"),
              Parameter(Tensor(np.zeros(300, np.float32)).astype(ms.bfloat16), name="b")]
    optimizer = AdamOffload(params, shard_state=True)
    assert optimizer.shard is None
    assert [m.shape for m in optimizer.masters] == [p.shape for p in params]


@pytest.mark.slow
@pytest.mark.parametrize("case", ["fed_written", "device_net_written"])
def test_a_write_after_construction_is_kept_sharded_or_not(two, case, monkeypatch, tmp_path):
    """Every parameter written with set_data after HALF steps, on every rank: sharded equals unsharded, and
    the unsharded run equals one process that makes the same write; the fed run's masters equal float32
    parameters written with the same values widened (the master restarts from the written value; before,
    it threw the write away)."""
    plain, grads = _whole(two, f"{case}_plain", 2)
    shard, _ = _whole(two, f"{case}_shard", 2)
    _assert_same_bits(plain, shard, case)
    if case != "fed_written":
        return
    monkeypatch.chdir(tmp_path)
    ms.set_context(mode=ms.GRAPH_MODE)
    replayed = _replay("fed", grads, False, write_at=shared.HALF)
    for name, value in replayed.items():
        assert plain[name].tobytes() == value.tobytes(), f"'{name}' differs from the replay"
    float32 = _replay("fed", {s: {k: _widened(g, _sizes("fed")[k][0]) for k, g in step.items()}
                              for s, step in grads.items()}, False, float32_everywhere=True, write_at=shared.HALF)
    for name, (dtype, _) in _sizes("fed").items():
        if dtype != ms.float32:
            assert plain["master." + name].tobytes() == float32[name].tobytes(), f"master.{name}"
