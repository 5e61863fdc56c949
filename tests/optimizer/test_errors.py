"""AdamOffload's constructor and step errors: the exception type nn.AdamOffload raises, and a message that
names the argument.

The table covers nn.AdamOffload's Raises section and the checks of its base class, nn.Optimizer. The
expected type is what nn.AdamOffload actually raises in this MindSpore (it is called for each case); the
type recorded in the table is the fallback once MindSpore no longer ships it, and is itself checked
against this MindSpore while it does. Where the behaviour differs from MindSpore's documentation, the
row says so:

- a group without "params" raises KeyError('params') (not documented);
- a str learning_rate is taken as an Iterable of learning rates and fails with ValueError "could not
  convert string to float" (the docs promise TypeError; the message does not name the argument);
- duplicate parameters fail with ValueError from cloning the moments ("its name 'moment1.<name>'
  already exists"), duplicates across groups with RuntimeError;
- an order_params parameter that is in no group fails with ValueError "'<name>' is not in list" (naming
  a group parameter missing from order_params) or, when the counts differ, a length message;
- bool is accepted for learning_rate, weight_decay and loss_scale (it is an int), refused for beta1,
  beta2 and eps (they must be float).

Deliberate differences from nn.AdamOffload (ours-only tests below): float16 parameters, float16
gradients, NaN beta1/beta2 (nn.AdamOffload accepts them and trains on NaN), MS_CUSTOM_AOT_WHITE_LIST, and
float arguments that only go wrong in float32, where the kernel computes (nn.AdamOffload accepts them all):
eps beyond float32 (inf there: every update 0) or below its smallest value (0 there: 0/0 is NaN where a
gradient and its moments are 0), a beta that rounds to 0 or 1, a learning rate, weight decay or loss scale
beyond float32, and an inf or NaN inside a Tensor or list of learning rates.
"""
import os
import re

import numpy as np
import pytest

ms = pytest.importorskip("mindspore")
from mindspore import Parameter, Tensor, nn  # noqa: E402

from mindspore_offload import AdamOffload, kernel  # noqa: E402
from support.constructor_cases import kw, net_params, params, raised  # noqa: E402

HAS_MINDSPORE_ADAM_OFFLOAD = hasattr(nn, "AdamOffload")


def other():
    return Parameter(Tensor(np.ones(2, np.float32)), name="other")


NOT_LIST = "all elements of the argument 'parameters' must be 'Parameter' or 'dict'"
LR_VALUE = "'learning rate' must be float and must >= 0"

# (id, build, recorded type in MindSpore 2.10 (None: accepted), message regex)
CASES = [
    # Optimizer: params
    ("params-a-parameter", params(lambda p: (p[0], {})), TypeError, NOT_LIST),
    ("params-element-int", params(lambda p: ([1, 2], {})), TypeError, NOT_LIST),
    ("params-element-tensor", params(lambda p: ([Tensor(np.ones(2, np.float32))], {})), TypeError, NOT_LIST),
    ("params-dict-and-parameter", params(lambda p: ([{"params": [p[0]]}, p[1]], {})), TypeError, NOT_LIST),
    ("params-empty", params(lambda p: ([], {})), ValueError, "parameters must not be empty"),
    ("params-tuple", params(lambda p: (tuple(p), {})), None, None),
    ("group-without-params", params(lambda p: ([{"lr": 0.1}], {})), KeyError, "'params'"),
    ("group-params-a-tensor", params(lambda p: ([{"params": [Tensor(np.ones(2, np.float32))]}], {})), TypeError,
     "element in group parameters must be Parameter type"),
    ("order_params-extra", params(lambda p: ([{"params": p}, {"order_params": p + [other()]}], {})), ValueError,
     "length of order parameters must be the same as the length of group parameters"),
    ("order_params-foreign", params(lambda p: ([{"params": p}, {"order_params": [p[0], other()]}], {})),
     ValueError, "'bias' is not in list"),
    ("duplicate-params", params(lambda p: ([p[0], p[0]], {})), ValueError, r"'moment1\.weight' already exists"),
    ("duplicate-across-groups", params(lambda p: ([{"params": p}, {"params": [p[0]]}], {})), RuntimeError,
     "weight parameter already exists"),
    # Optimizer: learning_rate
    ("learning_rate-str", kw(learning_rate="0.1"), ValueError, "could not convert string to float"),
    ("learning_rate-none", kw(learning_rate=None), TypeError, "'learning_rate' must be int, float, Tensor"),
    ("learning_rate-negative", kw(learning_rate=-0.1), ValueError, LR_VALUE),
    ("learning_rate-negative-int", kw(learning_rate=-1), ValueError, LR_VALUE),
    ("learning_rate-inf", kw(learning_rate=float("inf")), ValueError, "'learning rate' must be a legal value"),
    ("learning_rate-nan", kw(learning_rate=float("nan")), ValueError, "'learning rate' must be a legal value"),
    ("learning_rate-2d-tensor", kw(learning_rate=Tensor(np.ones((2, 2), np.float32))), ValueError,
     "'learning_rate' is Tensor type, then the dimension of it should be 0 or 1"),
    ("learning_rate-bool", kw(learning_rate=True), None, None),
    ("group-lr-negative", params(lambda p: ([{"params": p, "lr": -0.1}], {})), ValueError, LR_VALUE),
    # Optimizer: weight_decay
    ("weight_decay-negative", kw(weight_decay=-0.1), ValueError, "'weight_decay' must be float and must >= 0"),
    ("weight_decay-inf", kw(weight_decay=float("inf")), ValueError, "'weight_decay' must be a legal value"),
    ("weight_decay-str", kw(weight_decay="0.1"), TypeError, "'Weight_decay' must be int, float or Cell"),
    ("group-weight_decay-str", params(lambda p: ([{"params": p, "weight_decay": "x"}], {})), TypeError,
     "'Weight_decay' must be int, float or Cell"),
    ("group-weight_decay-negative", params(lambda p: ([{"params": p, "weight_decay": -0.1}], {})), ValueError,
     "'weight_decay' must be float and must >= 0"),
    ("weight_decay-bool", kw(weight_decay=True), None, None),
    # Optimizer: loss_scale
    ("loss_scale-0", kw(loss_scale=0.0), ValueError, "'loss_scale' must be float and must > 0"),
    ("loss_scale-negative", kw(loss_scale=-1.0), ValueError, "'loss_scale' must be float and must > 0"),
    ("loss_scale-inf", kw(loss_scale=float("inf")), ValueError, "'loss_scale' must be a legal value"),
    ("loss_scale-str", kw(loss_scale="1"), TypeError, "type of 'loss_scale' should be 'float'"),
    ("loss_scale-int", kw(loss_scale=1), None, None),
    ("loss_scale-bool", kw(loss_scale=True), None, None),
    # AdamOffload: beta1, beta2, eps
    ("beta1-int-1", kw(beta1=1), TypeError, "type of 'beta1' should be 'float', but got type 'int'"),
    ("beta1-1.5", kw(beta1=1.5), ValueError, r"'beta1' must be in range of \(0.0, 1.0\), but got 1.5"),
    ("beta1-0", kw(beta1=0.0), ValueError, r"'beta1' must be in range of \(0.0, 1.0\)"),
    ("beta1-1", kw(beta1=1.0), ValueError, r"'beta1' must be in range of \(0.0, 1.0\)"),
    ("beta1-inf", kw(beta1=float("inf")), ValueError, r"'beta1' must be in range of \(0.0, 1.0\)"),
    ("beta1-bool", kw(beta1=True), TypeError, "type of 'beta1' should be 'float', but got type 'bool'"),
    ("beta1-str", kw(beta1="0.9"), TypeError, "type of 'beta1' should be 'float', but got type 'str'"),
    ("beta1-numpy-float32", kw(beta1=np.float32(0.9)), TypeError, "type of 'beta1' should be 'float'"),
    ("beta1-numpy-float64", kw(beta1=np.float64(0.9)), None, None),  # a subclass of float
    ("beta2-0", kw(beta2=0.0), ValueError, r"'beta2' must be in range of \(0.0, 1.0\)"),
    ("beta2-1", kw(beta2=1.0), ValueError, r"'beta2' must be in range of \(0.0, 1.0\)"),
    ("beta2-int-0", kw(beta2=0), TypeError, "type of 'beta2' should be 'float', but got type 'int'"),
    ("beta2-none", kw(beta2=None), TypeError, "type of 'beta2' should be 'float'"),
    ("eps-0", kw(eps=0.0), ValueError, "'eps' must be float and must > 0"),
    ("eps-negative", kw(eps=-1e-8), ValueError, "'eps' must be float and must > 0"),
    ("eps-int-1", kw(eps=1), TypeError, "type of 'eps' should be 'float', but got type 'int'"),
    ("eps-bool", kw(eps=True), TypeError, "type of 'eps' should be 'float', but got type 'bool'"),
    ("eps-nan", kw(eps=float("nan")), ValueError, "'eps' must be a legal value, but got 'nan'"),
    ("eps-inf", kw(eps=float("inf")), ValueError, "'eps' must be a legal value, but got 'inf'"),
    ("eps-minus-inf", kw(eps=-float("inf")), ValueError, "'eps' must be a legal value, but got '-inf'"),
    ("beta1-minus-inf", kw(beta1=-float("inf")), ValueError, r"'beta1' must be in range of \(0.0, 1.0\)"),
    ("beta2-inf", kw(beta2=float("inf")), ValueError, r"'beta2' must be in range of \(0.0, 1.0\)"),
    ("learning_rate-minus-inf", kw(learning_rate=-float("inf")), ValueError, "'learning rate' must be a legal value"),
    ("weight_decay-nan", kw(weight_decay=float("nan")), ValueError, "'weight_decay' must be a legal value"),
    ("loss_scale-nan", kw(loss_scale=float("nan")), ValueError, "'loss_scale' must be a legal value"),
    # AdamOffload: flags
    ("use_locking-int", kw(use_locking=1), TypeError, "type of 'use_locking' should be 'bool'"),
    ("use_locking-none", kw(use_locking=None), TypeError, "type of 'use_locking' should be 'bool'"),
    ("use_nesterov-str", kw(use_nesterov="yes"), TypeError, "type of 'use_nesterov' should be 'bool'"),
    ("use_nesterov-int", kw(use_nesterov=0), TypeError, "type of 'use_nesterov' should be 'bool'"),
]


def expected_type(build, recorded):
    if not HAS_MINDSPORE_ADAM_OFFLOAD:
        return recorded
    error = raised(nn.AdamOffload, build)
    return None if error is None else type(error)


@pytest.mark.parametrize("build, recorded, message", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_same_exception_type_as_nn_adam_offload(build, recorded, message):
    expected = expected_type(build, recorded)
    error = raised(AdamOffload, build)
    if expected is None:
        assert error is None, f"nn.AdamOffload accepts this, but ours raised {error!r}"
        return
    assert type(error) is expected, f"expected {expected.__name__}, got {error!r}"
    assert re.search(message, str(error)), f"{message!r} not in {str(error)!r}"


@pytest.mark.skipif(not HAS_MINDSPORE_ADAM_OFFLOAD, reason="this MindSpore no longer ships nn.AdamOffload")
def test_recorded_types_are_this_mindspores():
    """Keeps the fallback column honest while nn.AdamOffload exists."""
    wrong = [(c[0], c[2], expected_type(c[1], c[2])) for c in CASES if expected_type(c[1], c[2]) is not c[2]]
    assert not wrong


def test_case_ids_are_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


# Ours only.

@pytest.mark.parametrize("name", ["beta1", "beta2"])
def test_nan_beta_is_refused(name):
    """nn.AdamOffload accepts a NaN beta1/beta2 (its range check lets NaN through); ours refuses it."""
    with pytest.raises(ValueError, match=rf"'{name}' must be in range of \(0.0, 1.0\), but got nan"):
        AdamOffload(net_params(), **{name: float("nan")})


FLOAT32_CASES = [
    ("eps-beyond-float32", dict(eps=1e39), r"'eps' must be positive and finite in float32.*1e\+39, which is inf"),
    ("eps-below-float32", dict(eps=1e-50), r"'eps' must be positive and finite in float32.*1e-50, which is 0.0"),
    ("beta1-rounds-to-0", dict(beta1=1e-50), r"'beta1' must be in range of \(0.0, 1.0\) in float32.*which is 0.0"),
    ("beta2-rounds-to-1", dict(beta2=1 - 1e-12), r"'beta2' must be in range of \(0.0, 1.0\) in float32.*which is 1.0"),
    ("beta1-rounds-to-1", dict(beta1=1 - 1e-9), r"'beta1' must be in range of \(0.0, 1.0\) in float32.*which is 1.0"),
    ("learning_rate-beyond-float32", dict(learning_rate=1e39), r"'learning rate' must be finite in float32, but it is "
                                                                 r"inf at step 0"),
    ("learning_rate-tensor-inf", dict(learning_rate=Tensor(np.float32(np.inf))), "'learning rate' must be finite"),
    ("learning_rate-tensor-nan", dict(learning_rate=Tensor(np.float32(np.nan))), "it is nan at step 0"),
    ("learning_rate-list-inf", dict(learning_rate=[0.1, 0.01, float("inf")]), "it is inf at step 2"),
    ("learning_rate-vector-nan", dict(learning_rate=Tensor(np.array([0.1, np.nan], np.float32))), "nan at step 1"),
    ("weight_decay-beyond-float32", dict(weight_decay=1e39), "'weight_decay' must be finite in float32"),
    ("loss_scale-beyond-float32", dict(loss_scale=1e39), "'loss_scale' and its reciprocal must be finite"),
    ("loss_scale-reciprocal-beyond-float32", dict(loss_scale=1e-39), "'loss_scale' and its reciprocal must be"),
]


@pytest.mark.parametrize("kwargs, message", [pytest.param(*c[1:], id=c[0]) for c in FLOAT32_CASES])
def test_values_that_break_in_float32_are_refused(kwargs, message):
    """nn.AdamOffload accepts each of these and then trains nothing, or NaN; ours says which value is wrong."""
    if HAS_MINDSPORE_ADAM_OFFLOAD:
        assert raised(nn.AdamOffload, kw(**kwargs)) is None  # a difference on purpose; see the module docstring
    with pytest.raises(ValueError, match=message):
        AdamOffload(net_params(), **kwargs)


def test_group_learning_rate_beyond_float32_names_the_group():
    weight, bias = net_params()
    with pytest.raises(ValueError, match="it is inf at group 1, step 0"):
        AdamOffload([{"params": [weight]}, {"params": [bias], "lr": 1e39}])


@pytest.mark.parametrize("kwargs", [dict(eps=1.5e-45), dict(eps=3e38), dict(beta2=1 - 1e-7), dict(learning_rate=3e38),
                                    dict(loss_scale=1e38)], ids=str)
def test_extreme_values_float32_holds_are_accepted(kwargs):
    AdamOffload(net_params(), **kwargs)


@pytest.mark.parametrize("dtype", [ms.float64, ms.int32], ids=["float64", "int32"])
def test_unsupported_parameter_dtype_is_refused_at_construction(dtype):
    """float32, float16 and bfloat16 are accepted (16-bit ones get float32 masters); nothing else."""
    odd = Parameter(Tensor(np.ones(3), dtype), name="odd_weight")
    with pytest.raises(TypeError, match=rf"the parameter 'odd_weight' is {dtype}, but the supported dtypes are "
                                        "float32, float16 and bfloat16"):
        AdamOffload(net_params() + [odd])


def test_unsupported_parameter_in_a_group_is_refused():
    odd = Parameter(Tensor(np.ones(3, np.float64)), name="odd_bias")
    with pytest.raises(TypeError, match="'odd_bias' is Float64"):
        AdamOffload([{"params": net_params()}, {"params": [odd], "lr": 0.1}])


def test_white_list_without_the_library_is_refused(monkeypatch, tmp_path):
    unrelated = tmp_path / "unrelated"
    unrelated.mkdir()
    monkeypatch.setenv("MS_CUSTOM_AOT_WHITE_LIST", str(unrelated))
    library_folder = os.path.dirname(kernel.library_path())
    with pytest.raises(TypeError) as info:
        AdamOffload(net_params())
    message = str(info.value)
    assert "MS_CUSTOM_AOT_WHITE_LIST" in message and str(unrelated) in message
    assert f"Set MS_CUSTOM_AOT_WHITE_LIST to a folder that contains it (e.g. '{library_folder}')" in message


def test_white_list_that_does_not_exist_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("MS_CUSTOM_AOT_WHITE_LIST", str(tmp_path / "missing"))
    with pytest.raises(TypeError, match="MS_CUSTOM_AOT_WHITE_LIST"):
        AdamOffload(net_params())


def gradients(params, dtype=np.float32):
    return tuple(Tensor(np.full(p.shape, 0.5, dtype)) for p in params)


def state(opt, params):
    return {p.name: p.asnumpy().copy() for p in list(opt.get_parameters()) + list(params)}


def test_white_list_set_to_the_library_folder_works(monkeypatch, graph_mode):
    monkeypatch.setenv("MS_CUSTOM_AOT_WHITE_LIST", os.path.dirname(kernel.library_path()))
    p = net_params()
    opt = AdamOffload(p)
    opt(gradients(p))
    assert int(opt.global_step.asnumpy()[0]) == 1
    assert np.any(opt.moment1[0].asnumpy() != 0)


@pytest.mark.parametrize("dtype, message", [
    (np.float16, r"the 'gradient' of the float32 parameter 'bias' must be float32, but got Float16. Cast the "
                 r"gradients to float32"),
    (np.float64, r"the 'gradient' of the float32 parameter 'bias' must be float32, but got Float64"),
], ids=["float16", "float64"])
def test_non_float32_gradient_fails_at_compile_naming_its_parameter_and_changes_nothing(dtype, message, graph_mode):
    p = net_params()
    opt = AdamOffload(p)
    opt(gradients(p))  # one good step, so the state is not all initial values
    before = state(opt, p)
    with pytest.raises(TypeError, match=message):
        opt(gradients(p)[:1] + gradients(p, dtype)[1:])  # the bias's gradient alone is of another dtype
    after = state(opt, p)
    assert before.keys() == after.keys()
    for name in before:
        assert before[name].tobytes() == after[name].tobytes(), name
    opt(gradients(p))  # and it still steps
    assert int(opt.global_step.asnumpy()[0]) == 2
