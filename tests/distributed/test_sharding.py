"""AdamOffload(shard_state=True): each data-parallel rank keeps 1/N of the moments, with the same results.

Two msrun launches on the CPU (tests/workers/shard_worker.py trains): two ranks (parity in GRAPH_MODE and
PyNative, checkpoints half-way, resumes across layouts, nn.AdamOffload loading a merged checkpoint) and
three ranks (parity, and resuming the two-rank checkpoints). Every comparison is bit for bit: the kernel
is element-wise, so slicing must not change a single bit. Sharded moments are compared after joining
the ranks' slices with the same merge the checkpoint tool uses, whose own cases are tested here first
(on rank files written by hand), as are the loader's layout checks (this process built as one rank).
"""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("mindspore")

import mindspore as ms  # noqa: E402
from mindspore import Parameter, Tensor, nn  # noqa: E402

from mindspore_offload import AdamOffload, _sharding, load_param_into_net_checked  # noqa: E402
from mindspore_offload import checkpoint as mso_checkpoint  # noqa: E402
from support.msrun_launch import launch_ok  # noqa: E402

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
    merged = mso_checkpoint.merge_states(states)
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
    with pytest.raises(ValueError,
                       match=r"'moment1.w' in rank 0's checkpoint is of shape \(5,\).*3 checkpoints were passed"):
        mso_checkpoint.merge_states(two + [two[0]])
    with pytest.raises(ValueError, match="rank 1's checkpoint is missing"):
        mso_checkpoint.merge_states([two[0], {"w": whole}])


# --- merging rank files written here by hand: what each file records decides its place ---

MERGE_RANKS = 3


def _rank_entries(rank, ranks=MERGE_RANKS, step=3, min_size=4, record=True):
    """One rank's checkpoint of a sharded save at ``step``, and the whole state it is a part of: a sliced
    weight "w" (7, 5), a whole-moment bias "b" (3,), the step and beta powers; with ``record``, the
    layout entry a sharded AdamOffload saves."""
    rng = np.random.default_rng(1)
    whole = {"w": rng.standard_normal((7, 5)).astype(np.float32),
             "moment1.w": rng.standard_normal((7, 5)).astype(np.float32),
             "moment2.w": rng.random((7, 5)).astype(np.float32),
             "b": rng.standard_normal(3).astype(np.float32),
             "moment1.b": rng.standard_normal(3).astype(np.float32),
             "moment2.b": rng.random(3).astype(np.float32),
             "global_step": np.array([step], np.int32),
             "beta1_power": np.array([0.9 ** step], np.float32),
             "beta2_power": np.array([0.999 ** step], np.float32)}
    entries = dict(whole)
    for name in ("moment1.w", "moment2.w"):
        entries[name] = _sharding.slice_of(whole[name], rank, ranks)
    if record:
        entries[_sharding.LAYOUT_NAME] = np.array([rank, ranks, min_size], np.int64)
    return entries, whole


def _write(path, entries, fmt="ckpt"):
    ms.save_checkpoint([{"name": k, "data": ms.Tensor(v)} for k, v in entries.items()], str(path), format=fmt)
    return str(path)


def _rank_files(folder, ranks=range(MERGE_RANKS), fmt="ckpt", **kwargs):
    return [_write(folder / f"rank{rank}.{fmt}", _rank_entries(rank, **kwargs)[0], fmt) for rank in ranks]


def _read(path, fmt="ckpt"):
    return {k: v.asnumpy() for k, v in ms.load_checkpoint(str(path), format=fmt).items()}


def _assert_whole(merged):
    whole = _rank_entries(0)[1]
    assert sorted(merged) == sorted(whole)  # no layout entry: a whole checkpoint
    for name, value in whole.items():
        assert merged[name].shape == value.shape and merged[name].tobytes() == value.tobytes(), name


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 0, 1), (1, 2, 0), (2, 1, 0)])
def test_merge_finds_each_rank_in_its_file_in_any_order(tmp_path, order, capsys):
    paths = _rank_files(tmp_path)
    given = [paths[rank] for rank in order]
    _assert_whole(mso_checkpoint.merge_sharded_checkpoints(given))
    out = tmp_path / "merged.ckpt"
    assert mso_checkpoint._main(["merge", str(out)] + given) == 0
    assert capsys.readouterr().out == f"merged {MERGE_RANKS} rank checkpoints into {out}\n"
    _assert_whole(_read(out))


def _one_rank_changed(folder, rank, change):
    """The three rank files, rank ``rank``'s entries passed through ``change`` first."""
    paths = []
    for r in range(MERGE_RANKS):
        entries = _rank_entries(r)[0]
        if r == rank:
            change(entries)
        paths.append(_write(folder / f"rank{r}.ckpt", entries))
    return paths


def _set(name, value):
    return lambda entries: entries.__setitem__(name, value)


MERGE_FAULTS = {
    # case: (the files given, the file the message must name, what it must say)
    "missing rank": (lambda d: [_rank_files(d)[i] for i in (2, 0)], "rank2.ckpt",
                     "rank 1's file is missing"),
    "repeated rank": (lambda d: [_rank_files(d)[i] for i in (0, 1, 1, 2)], "rank1.ckpt",
                      "given twice"),
    "same rank in two files": (lambda d: _rank_files(d) + [_write(d / "copy.ckpt", _rank_entries(1)[0])],
                               "copy.ckpt", "both hold rank 1 of 3"),
    "other rank count": (lambda d: _rank_files(d, ranks=(0, 1)) + [_write(d / "four.ckpt", _rank_entries(2, 4)[0])],
                         "four.ckpt", "rank 2 of 4"),
    "other threshold": (lambda d: _rank_files(d, ranks=(0, 1)) + [_write(d / "t.ckpt",
                                                                          _rank_entries(2, min_size=2)[0])],
                        "t.ckpt", "threshold 2"),
    "another step": (lambda d: _rank_files(d, ranks=(0, 2)) + [_write(d / "rank1.ckpt", _rank_entries(1, step=6)[0])],
                     "rank1.ckpt", "'global_step' differs"),
    "another beta power": (lambda d: _one_rank_changed(d, 2, _set("beta2_power", np.array([0.5], np.float32))),
                           "rank2.ckpt", "'beta2_power' differs"),
    "another replicated weight": (lambda d: _one_rank_changed(d, 1, _set("b", np.zeros(3, np.float32))),
                                  "rank1.ckpt", "'b' differs"),
    "another whole moment": (lambda d: _one_rank_changed(d, 1, _set("moment2.b", np.zeros(3, np.float32))),
                             "rank1.ckpt", "'moment2.b' differs"),
    "an entry missing": (lambda d: _one_rank_changed(d, 2, lambda e: e.pop("moment1.b")),
                         "rank2.ckpt", "'moment1.b'"),
    "no layout recorded": (lambda d: _rank_files(d, ranks=(0, 1)) + [_write(d / "old.ckpt",
                                                                             _rank_entries(2, record=False)[0])],
                           "old.ckpt", "records no shard layout"),
    "not a checkpoint": (lambda d: _rank_files(d, ranks=(0, 1)) + [_garbage(d / "torn.ckpt")], "torn.ckpt",
                         "could not be read"),
    "no such file": (lambda d: _rank_files(d, ranks=(0, 1)) + [str(d / "nowhere.ckpt")], "nowhere.ckpt",
                     "could not be read"),
}


def _garbage(path):
    path.write_bytes(b"not a checkpoint")
    return str(path)


@pytest.mark.parametrize("fault", list(MERGE_FAULTS))
def test_merge_refuses_files_that_are_not_one_save_naming_the_file(tmp_path, fault, capsys):
    make, culprit, says = MERGE_FAULTS[fault]
    paths = make(tmp_path)
    with pytest.raises(ValueError, match=re.escape(says)) as error:
        mso_checkpoint.merge_sharded_checkpoints(paths)
    assert culprit in str(error.value)
    out = tmp_path / "merged.ckpt"
    assert mso_checkpoint._main(["merge", str(out)] + paths) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1, captured.err
    assert culprit in captured.err and says in captured.err
    assert not out.exists()


@pytest.mark.parametrize("name, fmt, args", [("merged.safetensors", "safetensors", []),
                                             ("merged.ckpt", "ckpt", []),
                                             ("merged.safetensors", "safetensors", ["--format", "safetensors"])])
def test_merge_writes_exactly_the_path_given_in_the_format_it_names(tmp_path, name, fmt, args, capsys):
    paths = _rank_files(tmp_path, fmt="safetensors")  # read by their extension too
    out = tmp_path / "out" / name
    out.parent.mkdir()
    assert mso_checkpoint._main(["merge"] + args + [str(out)] + paths) == 0
    assert os.listdir(out.parent) == [name]
    _assert_whole(_read(out, fmt))
    assert mso_checkpoint.merge_sharded_checkpoints(paths, out=str(out), format=fmt) is not None
    assert os.listdir(out.parent) == [name]


@pytest.mark.parametrize("args, says", [
    (["--format", "ckpt", "merged.safetensors"], "merged.safetensors' must end in '.ckpt'"),
    (["merged.bin"], "merged.bin' must end in '.ckpt' or '.safetensors'"),
])
def test_merge_refuses_an_output_name_its_format_cannot_load(tmp_path, args, says, capsys):
    paths = _rank_files(tmp_path)
    assert mso_checkpoint._main(["merge"] + args[:-1] + [str(tmp_path / args[-1])] + paths) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and says in err, err
    with pytest.raises(ValueError, match=re.escape(says)):
        mso_checkpoint.merge_sharded_checkpoints(paths, out=str(tmp_path / args[-1]),
                                                 format=args[1] if args[1:] else None)
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in paths)


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "mindspore_offload.checkpoint", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [["--help"], ["merge", "--help"], ["-h"]])
def test_merge_help_prints_usage_and_exits_0(tmp_path, args):
    done = _cli(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "merge" in done.stdout and "OUT" in done.stdout and "--format" in done.stdout
    assert done.stderr == ""


def test_merge_errors_from_a_shell_are_one_line_with_status_2(tmp_path):
    paths = _rank_files(tmp_path)
    for args, says in [(["merge", "m.ckpt", paths[0], paths[2]], "rank 1's file is missing"),
                       (["merge", "m.ckpt", paths[0], "nowhere.ckpt"], "nowhere.ckpt"),
                       (["merge", "m.ckpt"], "the following arguments are required: IN"),
                       (["split", "a.ckpt"], "split"),
                       ([], "merge")]:
        done = _cli(*args, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and says in lines[0] and "Traceback" not in done.stderr, (args, done.stderr)
    assert not (tmp_path / "m.ckpt").exists()


# --- loading, with this process built as one rank of a sharded run ---

@pytest.fixture
def as_rank(monkeypatch):
    """make(rank, ranks, min_size): a cell holding float32 "w" (35 elements, sliced from a threshold of 35
    down), "b" (3) and a float16 "h" (10, with a master) and an AdamOffload(shard_state=True) built as
    rank ``rank`` of ``ranks`` in DATA_PARALLEL would build it. Nothing is trained, so no collective
    runs; the world group's rank and size are faked."""
    import mindspore.communication as comm

    previous = ms.get_auto_parallel_context("parallel_mode")

    def make(rank, ranks, min_size=4, shard_state=True):
        monkeypatch.setattr(comm, "get_rank", lambda *args: rank)
        monkeypatch.setattr(comm, "get_group_size", lambda *args: ranks)
        monkeypatch.setenv("MINDSPORE_OFFLOAD_SHARD_MIN_SIZE", str(min_size))
        ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL)
        try:
            return _Cell(shard_state)
        finally:
            ms.set_auto_parallel_context(parallel_mode=previous)

    return make


class _Cell(nn.Cell):
    def __init__(self, shard_state, seed=0):
        super().__init__(auto_prefix=False)
        rng = np.random.default_rng(seed)
        self.w = Parameter(Tensor(rng.standard_normal((7, 5)).astype(np.float32)), name="w")
        self.b = Parameter(Tensor(rng.standard_normal(3).astype(np.float32)), name="b")
        self.h = Parameter(Tensor(rng.standard_normal(10).astype(np.float16)), name="h")
        self.opt = AdamOffload([self.w, self.b, self.h], shard_state=shard_state)


def _values(cell):
    return {p.name: p.asnumpy().copy() for p in cell.get_parameters()}


def _fill(cell, seed):
    """Distinct values in every optimizer state entry (but the layout), so a load shows."""
    rng = np.random.default_rng(seed)
    for p in cell.get_parameters():
        if p.name != _sharding.LAYOUT_NAME and p.dtype == ms.float32:
            p.set_data(Tensor(rng.standard_normal(p.shape).astype(np.float32)))
    return cell


def test_a_sharded_optimizer_records_its_layout_and_an_unsharded_one_does_not(as_rank, tmp_path):
    cell = as_rank(1, 2)
    layout = cell.opt.shard_layout
    assert layout.name == _sharding.LAYOUT_NAME and not layout.requires_grad
    assert layout.dtype == ms.int64 and layout.asnumpy().tolist() == [1, 2, 4]
    saved = ms.load_checkpoint(_save(cell, tmp_path / "rank1.ckpt"))
    assert saved[_sharding.LAYOUT_NAME].asnumpy().tolist() == [1, 2, 4]
    assert saved["moment1.w"].shape == (18,) and saved["master.h"].shape == (5,)
    for unsharded in (as_rank(1, 2, shard_state=False), _Cell(shard_state=True)):  # the second: stand-alone
        assert _sharding.LAYOUT_NAME not in _values(unsharded)
        assert not hasattr(unsharded.opt, "shard_layout")


def _save(cell, path):
    ms.save_checkpoint(cell, str(path))
    return str(path)


def test_each_ranks_own_state_is_kept_out_of_parameter_broadcast(as_rank):
    """parameter_broadcast=True copies rank 0's value of every Parameter not marked layerwise_parallel to
    every rank when a graph compiles (Cell.parameters_broadcast_dict). A rank's slices of the moments and
    masters (the masters differ between ranks from construction on) and its layout must not be among
    them; the replicated parameters and whole moments must."""
    cell = as_rank(1, 2)
    broadcast = cell.parameters_broadcast_dict()
    own = {"moment1.w", "moment2.w", "moment1.h", "moment2.h", "master.h", _sharding.LAYOUT_NAME}
    assert own.isdisjoint(broadcast), sorted(own & set(broadcast))
    assert {"w", "b", "h", "moment1.b", "moment2.b", "global_step", "beta1_power"} <= set(broadcast)


@pytest.mark.parametrize("saved_as, loaded_as, says", [
    ((1, 2, 4), (0, 2, 4), "rank 1 of 2 (threshold 4 elements), but this run is rank 0 of 2 (threshold 4 elements)"),
    ((0, 3, 4), (0, 2, 4), "rank 0 of 3 (threshold 4 elements), but this run is rank 0 of 2"),
    ((0, 2, 4), (0, 2, 2), "rank 0 of 2 (threshold 4 elements), but this run is rank 0 of 2 (threshold 2 elements)"),
    ((1, 2, 4), (0, 2, 2), "rank 1 of 2"),
])
def test_another_ranks_file_is_refused_naming_both_layouts_and_the_merge(as_rank, tmp_path, saved_as, loaded_as, says):
    path = _save(_fill(as_rank(*saved_as), 1), tmp_path / "train_rank.ckpt")
    cell = as_rank(*loaded_as)
    before = _values(cell)
    with pytest.raises(ValueError, match=re.escape(says)) as error:
        load_param_into_net_checked(cell, path)
    message = str(error.value)
    assert path in message and "nothing was loaded" in message
    assert "python -m mindspore_offload.checkpoint merge MERGED.ckpt RANK0.ckpt RANK1.ckpt" in message
    for name, value in _values(cell).items():
        assert value.tobytes() == before[name].tobytes(), name


def test_a_ranks_own_file_loads_and_the_layout_stays_this_runs(as_rank, tmp_path):
    source = _fill(as_rank(1, 2), 1)
    path = _save(source, tmp_path / "rank1.ckpt")
    cell = as_rank(1, 2)
    assert load_param_into_net_checked(cell, path) == ([], [])
    want, got = _values(source), _values(cell)
    for name in want:
        assert got[name].tobytes() == want[name].tobytes(), name
    assert cell.opt.shard_layout.asnumpy().tolist() == [1, 2, 4]


def test_a_whole_checkpoint_without_a_layout_loads_cut_to_this_ranks_slices(as_rank, tmp_path):
    whole = _fill(_Cell(shard_state=False, seed=3), 2)
    path = _save(whole, tmp_path / "merged.ckpt")
    cell = as_rank(1, 2)
    assert load_param_into_net_checked(cell, path) == ([], [])
    want, got = _values(whole), _values(cell)
    assert sorted(got) == sorted([*want, _sharding.LAYOUT_NAME])
    for name, value in want.items():
        sliced = name.startswith(("moment1.", "moment2.", "master.")) and name.endswith((".w", ".h"))
        expected = _sharding.slice_of(value, 1, 2) if sliced else value
        assert got[name].tobytes() == expected.tobytes(), name
    assert got[_sharding.LAYOUT_NAME].tolist() == [1, 2, 4]


def test_slices_that_record_no_layout_are_refused(as_rank, tmp_path):
    saved = ms.load_checkpoint(_save(_fill(as_rank(1, 2), 1), tmp_path / "rank1.ckpt"))
    del saved[_sharding.LAYOUT_NAME]  # as a file written before layouts were recorded
    cell = as_rank(1, 2)
    before = _values(cell)
    with pytest.raises(ValueError, match=r"holds slices \['moment1.w'.*records no shard layout.*nothing was loaded"):
        load_param_into_net_checked(cell, saved)
    for name, value in _values(cell).items():
        assert value.tobytes() == before[name].tobytes(), name


def test_a_rank_file_into_an_unsharded_run_is_refused_naming_its_layout(as_rank, tmp_path):
    path = _save(_fill(as_rank(1, 2), 1), tmp_path / "rank1.ckpt")
    cell = _Cell(shard_state=False)
    before = _values(cell)
    with pytest.raises(ValueError, match=r"'moment1.w'.*the file holds rank 1 of 2 .*this run is not sharded.*"
                                         r"python -m mindspore_offload"):
        load_param_into_net_checked(cell, path)
    for name, value in _values(cell).items():
        assert value.tobytes() == before[name].tobytes(), name


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
    """The run's state as one rank of an unsharded run would hold it; checks the ranks agree on the rest
    and that a sharded rank records its own rank."""
    states = _rank_states(out, case, ranks)
    for rank, state in enumerate(states):
        if _sharding.LAYOUT_NAME in state:
            assert state[_sharding.LAYOUT_NAME].tolist()[:2] == [rank, ranks], (case, rank)
    for name, value in states[0].items():
        if not name.startswith("moment") and name != _sharding.LAYOUT_NAME:
            for rank, state in enumerate(states[1:], 1):
                assert state[name].tobytes() == value.tobytes(), f"{case}: rank {rank} differs on '{name}'"
    return mso_checkpoint.merge_states(states)


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
def test_a_slice_checkpoint_loaded_unsharded_is_refused(two):
    for rank, state in enumerate(_rank_states(two, "slices_into_plain", 2)):
        message = str(state["message"])
        assert "nothing was loaded" in message and "python -m mindspore_offload.checkpoint merge" in message
        assert "'moment1.fc2.weight'" in message and "'moment1.scale'" not in message
        assert f"the file holds rank {rank} of 2 (threshold 4 elements); this run is not sharded" in message
        assert bool(state["unchanged"])


@pytest.mark.slow
@pytest.mark.parametrize("case", ["other_rank", "other_threshold", "slices2_into_shard3"])
def test_another_ranks_file_is_refused_naming_both_layouts(two, three, case):
    """Rank r loading rank 1-r's file; its own file under threshold 2; rank r of three loading rank
    min(r, 1)'s file of the two-rank run."""
    ranks = 3 if case == "slices2_into_shard3" else 2
    for rank, state in enumerate(_rank_states(three if ranks == 3 else two, case, ranks)):
        saver, threshold = {"other_rank": (1 - rank, 4), "other_threshold": (rank, 2)}.get(case, (min(rank, 1), 2))
        message = str(state["message"])
        assert (f"holds the optimizer state of rank {saver} of 2 (threshold 4 elements), but this run is rank {rank} "
                f"of {ranks} (threshold {threshold} elements); nothing was loaded") in message, message
        assert "python -m mindspore_offload.checkpoint merge" in message
        assert bool(state["unchanged"])


def test_a_master_without_its_parameter_sets_it_whole_but_a_master_slice_cannot(as_rank, tmp_path):
    """strict=False with master.h and without h: a whole master (merged) gives h rounded to nearest even on
    a sharded rank too; a rank's own file holds a slice of the master only, so that is refused."""
    whole = _fill(_Cell(shard_state=False, seed=3), 2)
    saved = ms.load_checkpoint(_save(whole, tmp_path / "merged.ckpt"))
    master = saved["master.h"].asnumpy()
    del saved["h"]
    cell = as_rank(1, 2)
    load_param_into_net_checked(cell, saved, strict=False)
    got = _values(cell)
    assert got["h"].tobytes() == master.astype(np.float16).tobytes()
    assert got["master.h"].tobytes() == _sharding.slice_of(master, 1, 2).tobytes()
    own = ms.load_checkpoint(_save(_fill(as_rank(1, 2), 4), tmp_path / "rank1.ckpt"))
    del own["h"]
    before = _values(cell)
    with pytest.raises(ValueError, match=r"'h' is missing beside its master 'master.h', which holds only one rank's"):
        load_param_into_net_checked(cell, own, strict=False)
    for name, value in _values(cell).items():
        assert value.tobytes() == before[name].tobytes(), name
