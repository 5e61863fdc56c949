"""AdamOffload(shard_state=True): each data-parallel rank keeps 1/N of the moments, with the same results.

Two msrun launches on the CPU (tests/shard_worker.py trains): two ranks (parity in GRAPH_MODE and
PyNative, checkpoints half-way, resumes across layouts, nn.AdamOffload loading a merged checkpoint) and
three ranks (parity, and resuming the two-rank checkpoints). Every comparison is bit for bit: the kernel
is element-wise, so slicing must not change a single bit. Sharded moments are compared after joining
the ranks' slices with the same merge the checkpoint tool uses, whose own cases are tested here first.
"""

import numpy as np
import pytest

pytest.importorskip("mindspore")

import mindspore as ms  # noqa: E402
from mindspore import nn  # noqa: E402

from mindspore_offload import AdamOffload, _sharding  # noqa: E402
from mindspore_offload import checkpoint as mso_checkpoint  # noqa: E402
from msrun_launch import launch_ok  # noqa: E402

# The worker's net: parameter sizes 231, 33, 1023, 31, 93, 3, 1.
SIZES = {"fc1.weight": 231, "fc1.bias": 33, "fc2.weight": 1023, "fc2.bias": 31, "fc3.weight": 93, "fc3.bias": 3,
         "scale": 1}


# --- slice layout and merge, without MindSpore's collectives ---

@pytest.mark.parametrize("ranks", [2, 3, 4, 7])
@pytest.mark.parametrize("shape", [(1,), (2,), (3,), (7, 5), (33, 31), (4, 4, 3)])
def test_slices_cover_the_moment_once_and_merge_back(shape, ranks):
    whole = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    size = whole.size
    k = _sharding.slice_length(size, ranks)
    slices = [_sharding.slice_of(whole, rank, ranks) for rank in range(ranks)]
    assert all(piece.shape == (k,) for piece in slices)
    joined = np.concatenate(slices)
    assert joined[:size].tobytes() == whole.reshape(-1).tobytes()
    assert not joined[size:].any()  # the padding is zeros
    sharded = _sharding.is_sharded(size, ranks, 0)
    states = [{"w": whole, "moment1.w": piece if sharded else whole} for piece in slices]
    merged = _sharding.merge(states)
    assert merged["moment1.w"].tobytes() == whole.tobytes()
    assert merged["moment1.w"].shape == shape


def test_a_slice_is_always_shorter_than_its_parameter():
    # merge() and the loader tell a saved slice from a whole moment by its shape.
    for size in range(1, 200):
        for ranks in (2, 3, 8):
            if _sharding.is_sharded(size, ranks, 0):
                assert _sharding.slice_length(size, ranks) < size


def test_merge_refuses_files_of_another_layout():
    whole = np.arange(10, dtype=np.float32)
    two = [{"w": whole, "moment1.w": _sharding.slice_of(whole, r, 2)} for r in range(2)]
    with pytest.raises(ValueError, match=r"'moment1.w' in rank 0's checkpoint is of shape \(5,\).*3 were passed"):
        _sharding.merge(two + [two[0]])
    with pytest.raises(ValueError, match="rank 1's checkpoint is missing"):
        _sharding.merge([two[0], {"w": whole}])


def test_checkpoint_cli_merges_rank_files(tmp_path, capsys):
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((7, 5)).astype(np.float32)
    moment = rng.standard_normal((7, 5)).astype(np.float32)
    bias_moment = rng.standard_normal(3).astype(np.float32)
    paths = []
    for rank in range(3):
        entries = {"w": weight, "moment1.w": _sharding.slice_of(moment, rank, 3), "b": np.ones(3, np.float32),
                   "moment1.b": bias_moment}
        paths.append(str(tmp_path / f"rank{rank}.ckpt"))
        ms.save_checkpoint([{"name": k, "data": ms.Tensor(v)} for k, v in entries.items()], paths[-1])
    out = str(tmp_path / "merged.ckpt")
    assert mso_checkpoint._main(["merge", out] + paths) == 0
    assert "merged 3 rank checkpoints" in capsys.readouterr().out
    merged = {k: v.asnumpy() for k, v in ms.load_checkpoint(out).items()}
    assert merged["moment1.w"].tobytes() == moment.tobytes() and merged["moment1.w"].shape == (7, 5)
    assert merged["moment1.b"].tobytes() == bias_moment.tobytes()
    assert merged["w"].tobytes() == weight.tobytes()


def test_checkpoint_cli_prints_usage_without_merge(capsys):
    assert mso_checkpoint._main(["split", "a.ckpt"]) == 2
    assert "merge MERGED.ckpt RANK0.ckpt" in capsys.readouterr().err


# --- the switch itself, in one process ---

def _dense_params():
    return nn.Dense(70, 60).trainable_params()


def test_shard_state_must_be_a_bool():
    with pytest.raises(TypeError, match="shard_state"):
        AdamOffload(_dense_params(), shard_state=1)


def test_stand_alone_shard_state_changes_nothing():
    params = _dense_params()
    optimizer = AdamOffload(params, shard_state=True)
    assert optimizer.shard is None
    assert "sliced" not in optimizer.step_kinds
    assert [m.shape for m in optimizer.moment1] == [p.shape for p in params]
    assert [m.shape for m in optimizer.moment2] == [p.shape for p in params]


@pytest.mark.parametrize("mode", [ms.ParallelMode.SEMI_AUTO_PARALLEL, ms.ParallelMode.AUTO_PARALLEL])
def test_other_parallel_modes_are_refused(mode):
    previous = ms.get_auto_parallel_context("parallel_mode")
    ms.set_auto_parallel_context(parallel_mode=mode)
    try:
        with pytest.raises(ValueError, match="'shard_state=True' works only in the DATA_PARALLEL"):
            AdamOffload(_dense_params(), shard_state=True)
        AdamOffload(_dense_params())  # without the switch nothing changes
    finally:
        ms.set_auto_parallel_context(parallel_mode=previous)


@pytest.mark.parametrize("value", ["-1", "4k", "1.5"])
def test_a_bad_threshold_in_the_environment_is_refused(monkeypatch, value):
    monkeypatch.setenv("MINDSPORE_OFFLOAD_SHARD_MIN_SIZE", value)
    with pytest.raises(ValueError, match=rf"MINDSPORE_OFFLOAD_SHARD_MIN_SIZE must be a whole number in "
                                         rf"\[0, 9223372036854775807\], but got '{value}'"):
        _sharding.min_size()


# --- msrun: two ranks, then three ---

def _launch(workers, out, min_size, source=None):
    return launch_ok("shard_worker.py", [out, min_size] + ([source] if source else []), workers, out, timeout=240)


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    # Threshold 4: fc3.bias (3) and scale (1) keep whole moments, the rest are sliced.
    return _launch(2, tmp_path_factory.mktemp("shard2"), 4)


@pytest.fixture(scope="module")
def three(tmp_path_factory, two):
    # Threshold 2: even fc3.bias is sliced (one element a rank).
    return _launch(3, tmp_path_factory.mktemp("shard3"), 2, source=two)


def _rank_states(out, case, ranks):
    states = []
    for rank in range(ranks):
        with np.load(out / f"{case}_rank{rank}.npz") as data:
            states.append({name.replace("optimizer.", "", 1): data[name] for name in data.files})
    return states


def _whole(out, case, ranks):
    """The run's state as one rank of an unsharded run would hold it; checks the ranks agree on the rest."""
    states = _rank_states(out, case, ranks)
    for name, value in states[0].items():
        if not name.startswith("moment"):
            for rank, state in enumerate(states[1:], 1):
                assert state[name].tobytes() == value.tobytes(), f"{case}: rank {rank} differs on '{name}'"
    return _sharding.merge(states)


def _assert_same_bits(expected, got, what):
    assert expected.keys() == got.keys(), what
    for name in expected:
        assert expected[name].shape == got[name].shape, (what, name)
        assert expected[name].tobytes() == got[name].tobytes(), f"{what}: '{name}' differs"


def _assert_slice_shapes(out, case, ranks, min_size):
    for state in _rank_states(out, case, ranks):
        for name, size in SIZES.items():
            sliced = _sharding.is_sharded(size, ranks, min_size)
            for prefix in ("moment1.", "moment2."):
                want = (_sharding.slice_length(size, ranks),) if sliced else state[name].shape
                assert state[prefix + name].shape == want, (case, prefix + name)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["graph", "pynative"])
def test_two_ranks_sharded_equals_unsharded(two, mode):
    plain, shard = ("plain", "shard") if mode == "graph" else ("pynative_plain", "pynative_shard")
    reference = _whole(two, plain, 2)
    _assert_same_bits(reference, _whole(two, shard, 2), f"{shard} vs {plain}")
    _assert_slice_shapes(two, shard, 2, 4)
    assert int(reference["global_step"][0]) == 6
    assert np.all(reference["moment2.fc2.weight"] > 0)  # the padding was not taken for the parameter


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["graph", "pynative"])
def test_three_ranks_sharded_equals_unsharded(three, mode):
    _assert_same_bits(_whole(three, f"{mode}_plain", 3), _whole(three, f"{mode}_shard", 3), mode)
    _assert_slice_shapes(three, f"{mode}_shard", 3, 2)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["shard_to_plain", "plain_to_shard", "shard_to_same"])
def test_resuming_across_layouts_equals_an_uninterrupted_run(two, case):
    _assert_same_bits(_whole(two, "plain", 2), _whole(two, case, 2), case)


@pytest.mark.slow
def test_the_merged_checkpoint_is_the_unsharded_one(two):
    merged = ms.load_checkpoint(str(two / "merged.ckpt"))
    plain = ms.load_checkpoint(str(two / "plain_rank0.ckpt"))
    assert merged.keys() == plain.keys()
    for name in plain:
        assert merged[name].asnumpy().tobytes() == plain[name].asnumpy().tobytes(), name


@pytest.mark.slow
def test_nn_adam_offload_resumes_from_a_merged_checkpoint(two):
    if not hasattr(nn, "AdamOffload"):
        pytest.skip("this MindSpore no longer ships nn.AdamOffload")
    reference, theirs = _whole(two, "plain", 2), _whole(two, "shard_to_mindspore", 2)
    for name in reference:
        np.testing.assert_allclose(theirs[name], reference[name], rtol=1e-5, atol=1e-7, err_msg=name)


@pytest.mark.slow
def test_three_ranks_resume_a_two_rank_sharded_checkpoint(three):
    _assert_same_bits(_whole(three, "from_plain2", 3), _whole(three, "from_shard2", 3), "from_shard2")
    _assert_slice_shapes(three, "from_shard2", 3, 2)


@pytest.mark.slow
@pytest.mark.parametrize("case, ranks", [("slices_into_plain", 2), ("slices2_into_shard3", 3)])
def test_a_slice_checkpoint_of_another_layout_is_refused(two, three, case, ranks):
    for state in _rank_states(two if ranks == 2 else three, case, ranks):
        message = str(state["message"])
        assert "nothing was loaded" in message and "python -m mindspore_offload.checkpoint merge" in message
        assert "'moment1.fc2.weight'" in message and "'moment1.scale'" not in message
        assert bool(state["unchanged"])
