"""AdamWeightDecayOffload against MindSpore's own nn.AdamWeightDecay on the CPU backend.

MindSpore 2.10 rounds a float32 AdamWeightDecay step with one scalar loop on a CPU without AVX-512, and
our kernel rounds exactly as that loop does (csrc/adamw.h), so the same LeNet5 trained from the same
weights on the same batches must come out bit for bit the same: network, moments and step. On an AVX-512
CPU, MindSpore's vector body rounds differently (docs/design.md), and the runs are compared to 1e-5. On
aarch64 MindSpore's NEON body and scalar tail compute what that scalar loop does (read from its
disassembly; docs/hosts.md), and the runs match bit for bit under emulation.
"""
import functools

import numpy as np
import pytest

import mindspore as ms
from mindspore import Parameter, Tensor, nn
from mindspore.amp import FixedLossScaleManager

from mindspore_offload import AdamWeightDecayOffload, kernel
from support import parity
from support.nets import ShrinkingWeightDecay
from support.parity import MODES, STEPS, ungrouped

BITWISE = "avx512" not in kernel.available_isas()


def grouped(conv_decay=0.01, other_lr=0.01, learning_rate=0.005, weight_decay=0.0):
    """The docstring's groups: conv weights decay, the rest at a learning rate of its own."""
    return parity.grouped(conv_decay, other_lr, learning_rate=learning_rate, weight_decay=weight_decay)


# name: (net -> (params, keyword arguments)). Built afresh for each optimizer.
CASES = {
    "defaults": lambda: ungrouped(),
    "weight_decay": lambda: ungrouped(weight_decay=0.05, learning_rate=0.01),  # beta/gamma spared
    "betas_eps": lambda: ungrouped(beta1=0.8, beta2=0.95, eps=1e-8, weight_decay=0.01),
    "grouped": lambda: grouped(),
    "grouped_decay_zero_and_cell": lambda: grouped(conv_decay=0.0, weight_decay=0.0),
    "grouped_lr_per_group_decay_cell": lambda: grouped(conv_decay=ShrinkingWeightDecay()),
    "weight_decay_cell": lambda: ungrouped(weight_decay=ShrinkingWeightDecay()),
    "tensor_lr": lambda: ungrouped(learning_rate=Tensor(np.linspace(0.01, 0.001, STEPS), ms.float32),
                                   weight_decay=0.01),
    "schedule_lr": lambda: ungrouped(learning_rate=nn.ExponentialDecayLR(0.01, 0.9, 4), weight_decay=0.01),
    "warmup_lr": lambda: ungrouped(learning_rate=nn.WarmUpLR(0.01, 5), weight_decay=0.02),
}


@functools.lru_cache(maxsize=None)
def trained(case, optimizer_cls, mode):
    return parity.train_case(CASES[case](), optimizer_cls, mode)


def assert_same_state(ours, theirs):
    assert sorted(ours) == sorted(theirs)
    for name, expected in theirs.items():
        if BITWISE:
            assert ours[name].tobytes() == expected.tobytes(), name
        else:
            atol = 1e-6 * float(np.max(np.abs(expected), initial=0.0))
            np.testing.assert_allclose(ours[name], expected, rtol=1e-5, atol=atol, err_msg=name)


COMPAT_CASES = ("defaults", "grouped_lr_per_group_decay_cell")  # also run by `make compat` (.ci/compat.py)


@MODES
@pytest.mark.parametrize("case", [pytest.param(case, marks=pytest.mark.compat) if case in COMPAT_CASES else case
                                  for case in CASES])
def test_trains_like_mindspore_adam_weight_decay(case, mode):
    ours = trained(case, AdamWeightDecayOffload, mode)
    theirs = trained(case, nn.AdamWeightDecay, mode)
    assert_same_state(ours, theirs)
    assert ours["optimizer.global_step"].tolist() == [STEPS]
    parity.assert_every_weight_trained(ours)


@MODES
def test_weight_decay_moves_the_weights(mode):
    """The decay changes this net's training (so the decay cases test something)."""
    parity.assert_decay_moves_the_weights(trained("weight_decay", AdamWeightDecayOffload, mode),
                                          trained("defaults", AdamWeightDecayOffload, mode))


@MODES
@pytest.mark.parametrize("optimizer_cls", [AdamWeightDecayOffload, nn.AdamWeightDecay], ids=["ours", "mindspore"])
def test_zero_gradients_decay_all_but_gamma_and_beta(optimizer_cls, mode):
    """With zero gradients only the decay moves a parameter; the filter spares 'beta' and 'gamma'."""
    parity.assert_zero_gradients_move_all_but_gamma_and_beta(optimizer_cls, mode, weight_decay=0.1,
                                                             learning_rate=0.01)


@pytest.mark.compat
@MODES
@pytest.mark.parametrize("host_apply", ["1", "0"], ids=["in-place", "device-path"])
def test_fixed_gradients_step_by_step(mode, host_apply, monkeypatch):
    """Gradients given directly (no training loop), checked after every step: parameters of many sizes,
    some decayed, against nn.AdamWeightDecay; also on the device path (MINDSPORE_OFFLOAD_HOST_APPLY=0),
    where the op returns the new parameter and the graph assigns it."""
    monkeypatch.setenv("MINDSPORE_OFFLOAD_HOST_APPLY", host_apply)
    ms.set_context(mode=mode)
    shapes = [(1,), (7,), (8,), (9,), (33,), (31, 33), (1000,)]
    rng = np.random.default_rng(3)
    start = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    names = [f"layer{i}.{'gamma' if i == 2 else 'weight'}" for i in range(len(shapes))]
    grads = [[(rng.standard_normal(s) * 10.0 ** rng.integers(-3, 1)).astype(np.float32) for s in shapes]
             for _ in range(8)]
    runs = []
    for optimizer_cls in (AdamWeightDecayOffload, nn.AdamWeightDecay):
        params = [Parameter(Tensor(x.copy()), name=n) for x, n in zip(start, names)]
        opt = optimizer_cls(params, learning_rate=0.02, weight_decay=0.1)
        if optimizer_cls is AdamWeightDecayOffload:
            assert set(opt.step_kinds) == {"adamw_host" if host_apply == "1" else "adamw_delta"}
        trace = []
        for step in grads:
            opt(tuple(Tensor(g) for g in step))
            trace.append([p.asnumpy().copy() for p in params])
        runs.append(trace)
    for t, (ours, theirs) in enumerate(zip(*runs)):
        assert_same_state({f"{n}@{t}": x for n, x in zip(names, ours)},
                          {f"{n}@{t}": x for n, x in zip(names, theirs)})


@MODES
@pytest.mark.parametrize("loss_scale", [None, 64.0], ids=["plain", "fixed-loss-scale"])
def test_model_trains_like_mindspore(mode, loss_scale):
    """What users write: ms.Model with a dataset; with a FixedLossScaleManager (drop_overflow_update=False:
    the train cell scales the loss and, as nn.AdamWeightDecay has no loss_scale, nothing unscales it)."""
    states = [parity.model_state(mode, lambda params: optimizer_cls(params, weight_decay=0.01, learning_rate=1e-4),
                                 None if loss_scale is None else
                                 FixedLossScaleManager(loss_scale, drop_overflow_update=False))
              for optimizer_cls in (AdamWeightDecayOffload, nn.AdamWeightDecay)]
    assert_same_state(*states)
