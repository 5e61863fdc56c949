"""AdamWeightDecayOffload's constructor and step errors: the exception type nn.AdamWeightDecay raises for
the same arguments (it is called for each case), and a message that names the argument.

The rows follow nn.AdamWeightDecay's Raises section and its base class's checks. Deliberate differences
(ours-only rows at the end): a NaN beta and values that only break in float32 are refused, as
AdamOffload refuses them; 16-bit gradients must have their parameter's dtype.
"""
import re

import numpy as np
import pytest

ms = pytest.importorskip("mindspore")
from mindspore import Parameter, Tensor, nn  # noqa: E402

from mindspore_offload import AdamWeightDecayOffload  # noqa: E402
from support.constructor_cases import kw, net_params, params, raised  # noqa: E402


NOT_LIST = "all elements of the argument 'parameters' must be 'Parameter' or 'dict'"
LR_VALUE = "'learning rate' must be float and must >= 0"

# (id, build, message regex; None: accepted)
CASES = [
    ("params-a-parameter", params(lambda p: (p[0], {})), NOT_LIST),
    ("params-element-int", params(lambda p: ([1, 2], {})), NOT_LIST),
    ("params-empty", params(lambda p: ([], {})), "parameters must not be empty"),
    ("group-without-params", params(lambda p: ([{"lr": 0.1}], {})), "'params'"),
    ("duplicate-params", params(lambda p: ([p[0], p[0]], {})), r"'adam_m\.weight' already exists"),
    ("duplicate-across-groups", params(lambda p: ([{"params": p}, {"params": [p[0]]}], {})),
     "weight parameter already exists"),
    ("learning_rate-none", kw(learning_rate=None), "'learning_rate' must be int, float, Tensor"),
    ("learning_rate-negative", kw(learning_rate=-0.1), LR_VALUE),
    ("learning_rate-inf", kw(learning_rate=float("inf")), "'learning rate' must be a legal value"),
    ("learning_rate-2d-tensor", kw(learning_rate=Tensor(np.ones((2, 2), np.float32))),
     "'learning_rate' is Tensor type, then the dimension of it should be 0 or 1"),
    ("group-lr-negative", params(lambda p: ([{"params": p, "lr": -0.1}], {})), LR_VALUE),
    ("weight_decay-negative", kw(weight_decay=-0.1), "'weight_decay' must be float and must >= 0"),
    ("weight_decay-str", kw(weight_decay="0.1"), "'Weight_decay' must be int, float or Cell"),
    ("group-weight_decay-negative", params(lambda p: ([{"params": p, "weight_decay": -0.1}], {})),
     "'weight_decay' must be float and must >= 0"),
    ("weight_decay-int", kw(weight_decay=1), None),
    ("beta1-int-1", kw(beta1=1), "type of 'beta1' should be 'float', but got type 'int'"),
    ("beta1-1.5", kw(beta1=1.5), r"'beta1' must be in range of \(0.0, 1.0\), but got 1.5"),
    ("beta1-0", kw(beta1=0.0), r"'beta1' must be in range of \(0.0, 1.0\)"),
    ("beta2-1", kw(beta2=1.0), r"'beta2' must be in range of \(0.0, 1.0\)"),
    ("beta2-str", kw(beta2="0.9"), "type of 'beta2' should be 'float', but got type 'str'"),
    ("eps-0", kw(eps=0.0), "'eps' must be float and must > 0"),
    ("eps-negative", kw(eps=-1e-6), "'eps' must be float and must > 0"),
    ("eps-int", kw(eps=1), "type of 'eps' should be 'float', but got type 'int'"),
    ("eps-inf", kw(eps=float("inf")), "'eps' must be a legal value, but got 'inf'"),
]


@pytest.mark.parametrize("build, message", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_same_exception_type_as_nn_adam_weight_decay(build, message):
    theirs = raised(nn.AdamWeightDecay, build)
    ours = raised(AdamWeightDecayOffload, build)
    if message is None:
        assert theirs is None and ours is None, (theirs, ours)
        return
    assert theirs is not None, "nn.AdamWeightDecay accepts this case: the table is out of date"
    assert type(ours) is type(theirs), f"expected {type(theirs).__name__}, got {ours!r}"
    assert re.search(message, str(ours)), f"{message!r} not in {str(ours)!r}"


def test_case_ids_are_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


def test_signature_and_defaults_are_mindspores():
    import inspect

    theirs = inspect.signature(nn.AdamWeightDecay.__init__).parameters
    ours = inspect.signature(AdamWeightDecayOffload.__init__).parameters
    assert list(ours)[:len(theirs)] == list(theirs)
    for name, param in theirs.items():
        assert ours[name].default == param.default, name
    assert list(ours)[len(theirs):] == ["shard_state", "rounding"]
    assert ours["rounding"].kind is inspect.Parameter.KEYWORD_ONLY and ours["rounding"].default == "double"


# Ours only.

@pytest.mark.parametrize("kwargs, message", [
    (dict(beta1=float("nan")), r"'beta1' must be in range of \(0.0, 1.0\), but got nan"),
    (dict(eps=1e39), r"'eps' must be positive and finite in float32"),
    (dict(beta2=1 - 1e-12), r"'beta2' must be in range of \(0.0, 1.0\) in float32"),
    (dict(weight_decay=1e39), "'weight_decay' must be finite in float32"),
    (dict(learning_rate=[0.1, float("inf")]), "it is inf at step 1"),
    (dict(shard_state=1), "type of 'shard_state' should be 'bool'"),
    (dict(rounding="fast"), "the 'rounding' must be 'double' or 'float32', but got 'fast'"),
], ids=["nan-beta1", "eps-beyond-float32", "beta2-rounds-to-1", "weight_decay-beyond-float32", "lr-list-inf",
        "shard_state-int", "rounding-unknown"])
def test_values_that_break_in_float32_are_refused(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        AdamWeightDecayOffload(net_params(), **kwargs)


def test_unsupported_parameter_dtype_is_refused_at_construction():
    odd = Parameter(Tensor(np.ones(3), ms.float64), name="odd_weight")
    with pytest.raises(TypeError, match="the parameter 'odd_weight' is Float64"):
        AdamWeightDecayOffload(net_params() + [odd])


def test_wrong_gradient_shape_and_dtype_fail_at_compile_and_change_nothing(graph_mode):
    p = net_params()
    opt = AdamWeightDecayOffload(p, weight_decay=0.1)
    good = tuple(Tensor(np.full(x.shape, 0.5, np.float32)) for x in p)
    opt(good)
    before = {x.name: x.asnumpy().copy() for x in list(opt.get_parameters()) + p}
    with pytest.raises(TypeError, match="the 'gradient' of the float32 parameter 'bias' must be float32"):
        opt(good[:1] + (Tensor(np.full(p[1].shape, 0.5, np.float16)),))
    with pytest.raises(ValueError, match=r"a gradient of shape \(3,\) does not match its parameter 'bias'"):
        opt(good[:1] + (Tensor(np.full((3,), 0.5, np.float32)),))
    for x in list(opt.get_parameters()) + p:
        assert x.asnumpy().tobytes() == before[x.name].tobytes(), x.name
    opt(good)
    assert int(opt.global_step.asnumpy()[0]) == 2
