"""Data parallel training with msrun on the CPU: two workers, gradients averaged (DATA_PARALLEL), ours and
nn.AdamOffload from the same start on the same data (tests/workers/dp_worker.py does the training).

Every rank sees different data, so the ranks end with the same parameters only if the gradients were
all-reduced; and ours must end where nn.AdamOffload does.
"""

import numpy as np
import pytest

pytest.importorskip("mindspore")

from support.msrun_launch import launch, logs  # noqa: E402

WORKERS = 2
STEPS = 5


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("data_parallel")
    proc, log_dir = launch("dp_worker.py", [out, STEPS], WORKERS, out, timeout=120)
    assert proc.returncode == 0, f"msrun failed ({proc.returncode})\n{proc.stdout[-3000:]}\n{logs(log_dir)}"
    found = {}
    for name in ("ours", "mindspore"):
        for rank in range(WORKERS):
            path = out / f"{name}_rank{rank}.npz"
            if path.exists():
                with np.load(path) as data:
                    found[name, rank] = dict(data)
    assert ("ours", 0) in found and ("ours", 1) in found, f"missing results\n{logs(log_dir)}"
    return found


@pytest.mark.slow
def test_every_rank_ends_with_the_same_parameters(results):
    for name in ("ours", "mindspore"):
        if (name, 0) not in results:
            continue
        rank0, rank1 = results[name, 0], results[name, 1]
        assert int(rank0["group_size"]) == WORKERS
        assert rank0.keys() == rank1.keys()
        for key in rank0:
            assert rank0[key].tobytes() == rank1[key].tobytes(), (name, key)
    assert int(results["ours", 0]["global_step"][0]) == STEPS


@pytest.mark.slow
def test_ours_ends_where_nn_adam_offload_does(results):
    if ("mindspore", 0) not in results:
        pytest.skip("this MindSpore no longer ships nn.AdamOffload")
    for rank in range(WORKERS):
        ours, theirs = results["ours", rank], results["mindspore", rank]
        assert ours.keys() == theirs.keys()
        for key in ours:
            np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-5, atol=1e-7, err_msg=f"rank {rank}: {key}")


@pytest.mark.slow
def test_training_moved_the_parameters(results):
    ours = results["ours", 0]
    assert np.all(ours["moment2.weight"] > 0)
    assert float(ours["beta1_power"][0]) == pytest.approx(0.9**STEPS, rel=1e-6)
