"""AdamWeightDecayOffload(shard_state=True) under msrun on the CPU (tests/workers/shard_adamw_worker.py):
two ranks keep half the moments (and masters) each and must give the unsharded run's bits, in GRAPH_MODE
and PyNative, for float32 and 16-bit parameters; a sharded checkpoint, merged, resumes unsharded and in
nn.AdamWeightDecay to the uninterrupted run's bits."""
import numpy as np
import pytest

pytest.importorskip("mindspore")

from mindspore_offload import _sharding, kernel  # noqa: E402
from mindspore_offload import checkpoint as mso_checkpoint  # noqa: E402
from support.msrun_launch import launch_ok  # noqa: E402

RANKS = 2
# nn.AdamWeightDecay rounds as we do on CPUs without AVX-512 (docs/design.md).
BITWISE = "avx512" not in kernel.available_isas()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("shard_adamw")
    return launch_ok("shard_adamw_worker.py", [out, 4], RANKS, out, timeout=300)


def _states(out, case):
    states = []
    for rank in range(RANKS):
        with np.load(out / f"{case}_rank{rank}.npz") as data:
            states.append({name.replace("optimizer.", "", 1): data[name] for name in data.files})
    return states


def _whole(out, case):
    states = _states(out, case)
    for name, value in states[0].items():
        if not name.startswith(("adam_m.", "adam_v.", "master.")) and name != _sharding.LAYOUT_NAME:
            assert states[1][name].tobytes() == value.tobytes(), f"{case}: the ranks differ on '{name}'"
    return mso_checkpoint.merge_states(states)


def _assert_same_bits(expected, got, what):
    assert expected.keys() == got.keys(), (what, sorted(set(expected) ^ set(got)))
    for name in expected:
        assert expected[name].shape == got[name].shape, (what, name)
        assert expected[name].tobytes() == got[name].tobytes(), f"{what}: '{name}' differs"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["graph", "pynative"])
def test_two_ranks_sharded_equals_unsharded(run, mode):
    plain = _whole(run, f"{mode}_plain")
    _assert_same_bits(plain, _whole(run, f"{mode}_shard"), mode)
    sliced = _states(run, f"{mode}_shard")[0]
    assert sliced["adam_m.fc2.weight"].shape == (_sharding.slice_length(1023, RANKS),)
    assert sliced["adam_m.fc3.bias"].shape == (3,)  # under the threshold: whole
    assert int(plain["global_step"][0]) == 6


@pytest.mark.slow
def test_a_merged_checkpoint_resumes_to_the_uninterrupted_run(run):
    expected = {k: v for k, v in _whole(run, "graph_plain").items() if k != _sharding.LAYOUT_NAME}
    _assert_same_bits(expected, _whole(run, "merged_to_plain"), "resumed unsharded")
    theirs = _whole(run, "merged_to_mindspore")
    if BITWISE:
        _assert_same_bits(expected, theirs, "resumed by nn.AdamWeightDecay")


@pytest.mark.slow
def test_sixteen_bit_masters_sharded_equal_unsharded(run):
    plain, shard = _whole(run, "sixteen_plain"), _whole(run, "sixteen_shard")
    _assert_same_bits(plain, shard, "16-bit")
    assert _states(run, "sixteen_shard")[0]["master.wbf"].shape == (_sharding.slice_length(1023, RANKS),)
