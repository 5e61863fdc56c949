"""A NaN or Inf gradient element through the whole optimizer: it stays in its element, and ours and
nn.AdamOffload leave the same elements non-finite, with the same values everywhere else."""
import numpy as np
import pytest

ms = pytest.importorskip("mindspore")
from mindspore import Parameter, Tensor, nn  # noqa: E402

from mindspore_offload import AdamOffload  # noqa: E402

if not hasattr(nn, "AdamOffload"):
    pytest.skip("this MindSpore no longer ships nn.AdamOffload", allow_module_level=True)

SHAPES = [(37,), (5, 9)]


def run(cls, poison, position):
    rng = np.random.default_rng(0)
    params = [Parameter(Tensor(rng.standard_normal(s).astype(np.float32)), name=f"w{i}") for i, s in enumerate(SHAPES)]
    opt = cls(params, learning_rate=0.01)
    for step in range(3):
        grads = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
        if step == 1:
            grads[0].reshape(-1)[position] = poison
        opt(tuple(Tensor(g) for g in grads))
    return {p.name: p.asnumpy() for p in opt.get_parameters() if p.name.split(".")[-1] in ("w0", "w1")}


@pytest.mark.parametrize("poison", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("position", [0, 16, 36])
def test_non_finite_gradient_stays_in_its_element_like_nn_adam_offload(graph_mode, poison, position):
    ours, theirs = run(AdamOffload, poison, position), run(nn.AdamOffload, poison, position)
    assert ours.keys() == theirs.keys()
    for name in ours:
        bad = ~np.isfinite(ours[name])
        np.testing.assert_array_equal(bad, ~np.isfinite(theirs[name]), err_msg=name)
        expected_bad = np.zeros_like(bad)
        if name.endswith("w0"):  # w0, moment1.w0, moment2.w0: only the poisoned element
            expected_bad.reshape(-1)[position] = True
        np.testing.assert_array_equal(bad, expected_bad, err_msg=name)
        np.testing.assert_allclose(ours[name][~bad], theirs[name][~bad], rtol=1e-5, atol=1e-7, err_msg=name)
