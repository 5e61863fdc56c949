"""AdamOffload against MindSpore's own nn.AdamOffload, and against a float64 reference.

Parity: the same LeNet5 (with BatchNorm) trained for 20 steps from the same weights on the same
batches, once with each optimizer; every parameter of the train cell (network, moments, powers,
step) must agree to 1e-5 relative. From step 6 MindSpore tries splitting each tensor over its
threads, and rounds the leftover elements at those task edges a little differently from ours, so
the runs differ by float32 roundings, not bits (tests/optimizer/test_leftover.py has the bit-for-bit
cases); nets.LeNet5BN is built so that training does not amplify those past 1e-6.
"""
import functools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import mindspore as ms
from mindspore import Parameter, Tensor, nn
from mindspore.amp import FixedLossScaleManager

from mindspore_offload import AdamOffload
from support import parity
from support.nets import ShrinkingWeightDecay
from support.parity import MODES, STEPS, ungrouped
from support.paths import ROOT

if not hasattr(nn, "AdamOffload"):
    pytest.skip("this MindSpore no longer ships nn.AdamOffload", allow_module_level=True)

RTOL = 1e-5
ATOL_OF_SCALE = 1e-6  # absolute floor, as a fraction of the array's largest magnitude


def grouped_as_in_the_docs(learning_rate=0.1, other_lr=0.01):
    """nn.AdamOffload's docstring example: conv weights decay 0.01, the rest a learning rate of its own."""
    return parity.grouped(0.01, other_lr, learning_rate=learning_rate, weight_decay=0.0)


# name: (net -> (params, keyword arguments), loss scale manager, steps). Built afresh for every
# optimizer, so the two never share a learning-rate Tensor, schedule or weight-decay cell.
CASES = {
    "defaults": (lambda: ungrouped(), None, STEPS),
    "nesterov": (lambda: ungrouped(use_nesterov=True), None, STEPS),
    "weight_decay": (lambda: ungrouped(weight_decay=0.01), None, STEPS),
    "betas_eps": (lambda: ungrouped(beta1=0.8, beta2=0.95, eps=1e-6), None, STEPS),
    # The docs' rates verbatim move the conv weights by 0.1 a step: the trajectory turns chaotic
    # and a float32 rounding grows past 1e-3 by step 20 (it is 7e-7 at step 10). So the docs'
    # example runs 10 steps, and the same groups with rates a tenth as large run the full 20.
    "grouped_docs": (lambda: grouped_as_in_the_docs(), None, 10),
    "grouped_docs_slower": (lambda: grouped_as_in_the_docs(learning_rate=0.01, other_lr=0.001), None, STEPS),
    "tensor_lr": (lambda: ungrouped(learning_rate=Tensor(np.linspace(0.01, 0.001, STEPS), ms.float32)), None, STEPS),
    "iterable_lr": (lambda: ungrouped(learning_rate=[0.01 * 0.9**i for i in range(STEPS)]), None, STEPS),
    "schedule_lr": (lambda: ungrouped(learning_rate=nn.ExponentialDecayLR(0.01, 0.9, 4)), None, STEPS),
    "weight_decay_cell": (lambda: ungrouped(weight_decay=ShrinkingWeightDecay()), None, STEPS),
    "loss_scale": (lambda: ungrouped(loss_scale=1024.0),
                   lambda: FixedLossScaleManager(1024.0, drop_overflow_update=False), STEPS),
}
# The cases `make compat` runs on every MindSpore release: plain, Nesterov, parameter groups (with weight decay).
COMPAT_CASES = ("defaults", "nesterov", "grouped_docs_slower")


@functools.lru_cache(maxsize=None)
def trained(case, optimizer_cls, mode, **extra):
    """Every parameter after the case's steps with `optimizer_cls`; cached, so tests share runs."""
    arguments, manager, steps = CASES[case]
    return parity.train_case(arguments(), optimizer_cls, mode, steps, manager() if manager else None, **extra)


def assert_same_state(ours, theirs, rtol=RTOL):
    assert sorted(ours) == sorted(theirs)
    for name, expected in theirs.items():
        atol = ATOL_OF_SCALE * float(np.max(np.abs(expected), initial=0.0))
        np.testing.assert_allclose(ours[name], expected, rtol=rtol, atol=atol, err_msg=name)


@MODES
@pytest.mark.parametrize("case", [pytest.param(case, marks=pytest.mark.compat) if case in COMPAT_CASES else case
                                  for case in CASES])
def test_trains_like_mindspore_adam_offload(case, mode):
    ours = trained(case, AdamOffload, mode)
    theirs = trained(case, nn.AdamOffload, mode)
    assert_same_state(ours, theirs)
    assert ours["optimizer.global_step"].tolist() == [CASES[case][2]]
    parity.assert_every_weight_trained(ours)


@MODES
def test_model_with_fixed_loss_scale_manager_matches(mode):
    """What users write: ms.Model with FixedLossScaleManager(1024, drop_overflow_update=False) and the
    optimizer's loss_scale=1024; the same run as the "loss_scale" case, which builds that train cell."""
    ours, theirs = (parity.model_state(mode, lambda params: optimizer_cls(params, loss_scale=1024.0),
                                       FixedLossScaleManager(1024.0, drop_overflow_update=False))
                    for optimizer_cls in (AdamOffload, nn.AdamOffload))
    assert ours["optimizer.global_step"].tolist() == [STEPS]
    assert_same_state(ours, theirs)
    assert_same_state(ours, trained("loss_scale", AdamOffload, mode))


@MODES
def test_weight_decay_applies_to_weights_only(mode):
    """The decay has an effect on this net (so the "weight_decay" parity case tests something); the
    filter that spares 'beta' and 'gamma' is shown by the zero-gradient test below."""
    parity.assert_decay_moves_the_weights(trained("weight_decay", AdamOffload, mode),
                                          trained("defaults", AdamOffload, mode))


@MODES
@pytest.mark.parametrize("optimizer_cls", [AdamOffload, nn.AdamOffload], ids=["ours", "mindspore"])
def test_zero_gradient_weight_decay_leaves_gamma_and_beta(optimizer_cls, mode):
    """With zero gradients only the decay moves a parameter: the filtered ones stay bit-identical."""
    parity.assert_zero_gradients_move_all_but_gamma_and_beta(optimizer_cls, mode, weight_decay=0.01)


@MODES
def test_use_locking_trains_identically(mode):
    locked = trained("defaults", AdamOffload, mode, use_locking=True)
    unlocked = trained("defaults", AdamOffload, mode)
    assert sorted(locked) == sorted(unlocked)
    for name, value in unlocked.items():
        assert locked[name].dtype == value.dtype and locked[name].shape == value.shape, name
        assert locked[name].tobytes() == value.tobytes(), name


@pytest.mark.compat
@MODES
def test_returns_what_mindspore_adam_offload_returns(mode):
    """nn.AdamOffload documents a Tensor[bool]; it returns one True per parameter. So do we."""
    ms.set_context(mode=mode)
    results = []
    for optimizer_cls in (AdamOffload, nn.AdamOffload):
        params = [Parameter(Tensor(np.ones(shape, np.float32)), name=f"w{i}")
                  for i, shape in enumerate([(3,), (2, 5)])]
        grads = tuple(Tensor(np.full(p.shape, 0.5, np.float32)) for p in params)
        results.append(optimizer_cls(params)(grads))
    ours, theirs = results
    assert type(ours) is type(theirs)
    assert len(ours) == len(theirs) == 2
    assert all(bool(x) is True for x in ours)
    assert [bool(x) for x in ours] == [bool(x) for x in theirs]


# ---- float64 reference, on fixed gradients (no training loop to amplify roundings) ----

REFERENCE_SIZES = [1, 7, 8, 9, 33, 1000]


def adam_reference(weights, gradients, lr, beta1, beta2, eps, use_nesterov=False):
    """Float64 Adam as nn.AdamOffload defines it; `gradients` is a list of steps, each a list of arrays.
    The hyper-parameters are rounded to float32 first, as the optimizer holds them: 1 - float32(0.999)
    is 1.3e-5 away from 0.001, more than any rounding in the kernel."""
    lr, beta1, beta2, eps = (float(np.float32(x)) for x in (lr, beta1, beta2, eps))
    w = [np.asarray(x, np.float64) for x in weights]
    m = [np.zeros_like(x) for x in w]
    v = [np.zeros_like(x) for x in w]
    for t, step in enumerate(gradients, start=1):
        lr_t = lr * np.sqrt(1 - beta2**t) / (1 - beta1**t)
        for i, g in enumerate(step):
            g = np.asarray(g, np.float64)
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            numerator = beta1 * m[i] + (1 - beta1) * g if use_nesterov else m[i]
            w[i] = w[i] - lr_t * numerator / (np.sqrt(v[i]) + eps)
    return w, m, v


def fixed_problem(steps=10, seed=7):
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(n).astype(np.float32) for n in REFERENCE_SIZES]
    # Gradients of mixed scale, so eps and the tails of small arrays both matter somewhere.
    gradients = [[(rng.standard_normal(n) * 10.0 ** rng.integers(-4, 2)).astype(np.float32) for n in REFERENCE_SIZES]
                 for _ in range(steps)]
    return weights, gradients


def assert_close_to_reference(got, expected, what):
    for i, (a, b) in enumerate(zip(got, expected)):
        atol = ATOL_OF_SCALE * float(np.max(np.abs(b), initial=0.0))
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=atol, err_msg=f"{what}[{i}] (size {b.size})")


@pytest.mark.compat
@MODES
@pytest.mark.parametrize("use_nesterov", [False, True], ids=["plain", "nesterov"])
def test_direct_steps_match_float64_reference(use_nesterov, mode):
    ms.set_context(mode=mode)
    hyper = dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8)
    weights, gradients = fixed_problem()
    params = [Parameter(Tensor(w.copy()), name=f"w{i}") for i, w in enumerate(weights)]
    opt = AdamOffload(params, learning_rate=hyper["lr"], use_nesterov=use_nesterov)
    for step in gradients:
        opt(tuple(Tensor(g) for g in step))
    w, m, v = adam_reference(weights, gradients, use_nesterov=use_nesterov, **hyper)
    assert_close_to_reference([p.asnumpy() for p in params], w, "weight")
    assert_close_to_reference([x.asnumpy() for x in opt.moment1], m, "moment1")
    assert_close_to_reference([x.asnumpy() for x in opt.moment2], v, "moment2")
    np.testing.assert_allclose(opt.beta1_power.asnumpy(), [0.9 ** len(gradients)], rtol=RTOL)
    np.testing.assert_allclose(opt.beta2_power.asnumpy(), [0.999 ** len(gradients)], rtol=RTOL)


# ---- after MindSpore drops nn.AdamOffload and ops.AdamNoUpdateParam ----

WITHOUT_MINDSPORE_ADAM_OFFLOAD = r'''
import json
import sys

import mindspore

removed = []
for module in list(sys.modules.values()):
    if getattr(module, "__name__", "").startswith("mindspore"):
        for name in ("AdamOffload", "AdamNoUpdateParam"):
            if name in vars(module):
                delattr(module, name)
                removed.append(f"{module.__name__}.{name}")
import mindspore.nn, mindspore.ops, mindspore.ops.operations
assert not hasattr(mindspore.nn, "AdamOffload") and not hasattr(mindspore.nn.optim, "AdamOffload")
assert not hasattr(mindspore.ops, "AdamNoUpdateParam")
assert not hasattr(mindspore.ops.operations, "AdamNoUpdateParam")

import numpy as np
from mindspore import Tensor, nn

import mindspore_offload
from mindspore_offload import AdamOffload

mindspore.set_context(mode=mindspore.GRAPH_MODE)
rng = np.random.default_rng(3)
x = rng.standard_normal((16, 5)).astype(np.float32)
target = rng.standard_normal((16, 3)).astype(np.float32)
net = nn.Dense(5, 3)
w0 = rng.standard_normal((3, 5)).astype(np.float32)
b0 = rng.standard_normal(3).astype(np.float32)
net.weight.set_data(Tensor(w0))
net.bias.set_data(Tensor(b0))
cell = nn.TrainOneStepCell(nn.WithLossCell(net, nn.MSELoss()), AdamOffload(net.trainable_params(), 0.01))
losses = [float(cell(Tensor(x), Tensor(target)).asnumpy()) for _ in range(10)]

# float64: loss = mean((x w^T + b - target)^2), its gradients, and Adam as nn.AdamOffload defines it.
lr, beta1, beta2, eps = (float(np.float32(h)) for h in (0.01, 0.9, 0.999, 1e-8))  # as the optimizer holds them
w, b = w0.astype(np.float64), b0.astype(np.float64)
state = [[np.zeros_like(w), np.zeros_like(w)], [np.zeros_like(b), np.zeros_like(b)]]
x64, t64 = x.astype(np.float64), target.astype(np.float64)
for t in range(1, 11):
    residual = x64 @ w.T + b - t64
    grads = [2 * residual.T @ x64 / residual.size, 2 * residual.sum(axis=0) / residual.size]
    lr_t = lr * np.sqrt(1 - beta2**t) / (1 - beta1**t)
    new = []
    for value, g, mv in zip((w, b), grads, state):
        mv[0] = beta1 * mv[0] + (1 - beta1) * g
        mv[1] = beta2 * mv[1] + (1 - beta2) * g * g
        new.append(value - lr_t * mv[0] / (np.sqrt(mv[1]) + eps))
    w, b = new

err = {}
for name, got, want in (("weight", net.weight.asnumpy(), w), ("bias", net.bias.asnumpy(), b)):
    err[name] = float(np.max(np.abs(got - want) / (np.abs(want) + 1e-6 * np.max(np.abs(want)))))
print(json.dumps({"removed": removed, "losses": losses, "relative_error": err,
                  "module": AdamOffload.__module__}))
'''


def test_works_after_mindspore_drops_adam_offload(tmp_path):
    script = tmp_path / "without_adam_offload.py"
    script.write_text(WITHOUT_MINDSPORE_ADAM_OFFLOAD)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"mindspore.nn.AdamOffload", "mindspore.ops.AdamNoUpdateParam"} <= set(report["removed"])
    assert report["module"] == "mindspore_offload.optimizer"
    assert report["losses"][-1] < report["losses"][0]
    for name, error in report["relative_error"].items():
        assert error < RTOL, (name, error)
