"""Constructor checks, with MindSpore's exception types and wording.

Beyond MindSpore's own checks, the float arguments are checked as the host kernel will see them: in
float32. A value that is finite in Python but inf (or 0) in float32, and an inf or NaN inside a Tensor
or list of learning rates, would otherwise be accepted and train nothing, or NaN, without a word.
"""
import math
import os

import numpy as np

from mindspore_offload import _env

FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_type(name, value, kinds, cls_name):
    """MindSpore's check_value_type: bool is never accepted where it is not asked for."""
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, tuple(kinds)):
        expected = kinds[0].__name__ if len(kinds) == 1 else str([k.__name__ for k in kinds])
        raise TypeError(f"For '{cls_name}', the type of '{name}' should be '{expected}', but got type "
                        f"'{type(value).__name__}'.")


def check_choice(name, value, choices, cls_name):
    """A str, one of ``choices``: TypeError for another type, ValueError for another string."""
    check_type(name, value, [str], cls_name)
    if value not in choices:
        listed = " or ".join(repr(choice) for choice in choices)
        raise ValueError(f"For '{cls_name}', the '{name}' must be {listed}, but got {value!r}.")


def as_float32(value):
    """The value the kernel computes with: 1e39 is inf there, 1e-50 is 0."""
    with np.errstate(over="ignore", under="ignore"):
        return float(np.float32(value))


def check_open_unit_interval(name, value, cls_name):
    if not 0.0 < value < 1.0:
        raise ValueError(f"For '{cls_name}', the '{name}' must be in range of (0.0, 1.0), but got {value} with type "
                         f"'{type(value).__name__}'.")
    rounded = as_float32(value)
    if not 0.0 < rounded < 1.0:  # 1 - 1e-12 is 1.0: the moment would never move (or beta1_power stays 1)
        raise ValueError(f"For '{cls_name}', the '{name}' must be in range of (0.0, 1.0) in float32, but got "
                         f"{value}, which is {rounded} in float32. Use a value float32 can tell from 0 and 1.")


def check_positive(name, value, cls_name):
    if math.isinf(value) or math.isnan(value):  # MindSpore checks this first, so -inf reads the same
        raise ValueError(f"For '{cls_name}', the '{name}' must be a legal value, but got '{value}'.")
    if not value > 0:
        raise ValueError(f"For '{cls_name}', the '{name}' must be float and must > 0, but got '{value}' with type "
                         f"'{type(value).__name__}'.")
    rounded = as_float32(value)
    if math.isinf(rounded) or rounded == 0.0:  # inf makes every update 0; 0 makes 0/0 = NaN where m = v = 0
        raise ValueError(f"For '{cls_name}', the '{name}' must be positive and finite in float32 (the kernel computes "
                         f"in float32), but got {value}, which is {rounded} in float32.")


def _first_non_finite(tensor):
    values = np.asarray(tensor.asnumpy(), dtype=np.float64).reshape(-1)
    bad = np.flatnonzero(~np.isfinite(values))
    return None if bad.size == 0 else (int(bad[0]), float(values[bad[0]]))


def check_float32_hyperparameters(optimizer, cls_name):
    """learning_rate, weight_decay and loss_scale as nn.Optimizer stored them (float32 tensors).

    MindSpore refuses an inf or NaN float, but not a float beyond float32 (1e39 is stored as inf) nor an
    inf or NaN inside a Tensor or list of learning rates; schedules and dynamic weight decay (Cells) are
    computed during training and are not checked here.
    """
    from mindspore import Tensor

    learning_rates = optimizer.learning_rate if optimizer.is_group_lr else (optimizer.learning_rate,)
    for group, lr in enumerate(learning_rates):
        lr = getattr(lr, "learning_rate", lr)  # a Tensor or list of rates is kept in a Cell, one rate per step
        found = _first_non_finite(lr) if isinstance(lr, Tensor) else None
        if found is not None:
            where = f"group {group}, " if optimizer.is_group_lr else ""
            raise ValueError(f"For '{cls_name}', the 'learning rate' must be finite in float32, but it is {found[1]} "
                             f"at {where}step {found[0]}. A float beyond {FLOAT32_MAX:.8g} is inf in float32; "
                             "a Tensor or list of learning rates must hold no inf or NaN.")
    decays = optimizer.weight_decay if isinstance(optimizer.weight_decay, tuple) else (optimizer.weight_decay,)
    for decay in decays:
        found = _first_non_finite(decay) if isinstance(decay, Tensor) else None
        if found is not None:
            raise ValueError(f"For '{cls_name}', the 'weight_decay' must be finite in float32, but it is {found[1]} "
                             f"there (a float beyond {FLOAT32_MAX:.8g} is inf in float32).")
    scale = optimizer.loss_scale
    reciprocal = as_float32(1.0 / scale) if scale else math.inf
    if math.isinf(as_float32(scale)) or math.isinf(reciprocal) or reciprocal == 0.0:
        raise ValueError(f"For '{cls_name}', the 'loss_scale' and its reciprocal must be finite and non-zero in "
                         f"float32, but got {scale}. Use a loss scale between {1 / FLOAT32_MAX:.8g} and "
                         f"{FLOAT32_MAX:.8g}.")


def check_parameter_dtypes(parameters, cls_name):
    """float32 parameters take the float32 path; float16 and bfloat16 ones get float32 master weights on the
    host. Anything else would fail later, at graph compile, with an internal message."""
    import mindspore as ms

    supported = (ms.float32, ms.float16, ms.bfloat16)
    for param in parameters:
        if param.dtype not in supported:
            raise TypeError(f"For '{cls_name}', the parameter '{param.name}' is {param.dtype}, but the supported "
                            "dtypes are float32, float16 and bfloat16 (16-bit parameters get float32 master weights "
                            "on the host). Cast the parameter to one of them.")


# The float32 host ops' inputs after the parameter or lead, as their type inference names them.
ADAM_INPUTS = ("moment1", "moment2", "beta1_power", "beta2_power", "learning_rate", "beta1", "beta2", "eps", "gradient")
ADAMW_INPUTS = ("adam_m", "adam_v", "learning_rate", "beta1", "beta2", "eps", "weight_decay", "gradient")


def check_gradient_dtypes(dtypes, cls_name, param_name, names=ADAM_INPUTS):
    """Called from the custom op's type inference, at graph compile time: before any state is touched."""
    import mindspore as ms

    for name, dtype in zip(names, dtypes):
        while hasattr(dtype, "element_type"):  # Ref[Tensor[Float32]] and Tensor[Float32] to Float32
            dtype = dtype.element_type()
        if dtype != ms.float32:
            raise TypeError(f"For '{cls_name}', the '{name}' of the float32 parameter '{param_name}' must be float32, "
                            f"but got {dtype}. Cast the gradients to float32 before the optimizer (the parameters "
                            "and moments are float32).")


def check_gradient_shapes(shapes, cls_name, param_name):
    """Called from the custom op's shape inference: the gradient must match its moment."""
    moment, gradient = tuple(shapes[0]), tuple(shapes[-1])
    if moment != gradient:
        raise ValueError(f"For '{cls_name}', a gradient of shape {gradient} does not match its parameter "
                         f"'{param_name}' of shape {moment}.")


def check_white_list(library, cls_name):
    """MS_CUSTOM_AOT_WHITE_LIST, when set, must contain our library; say how to fix it before MindSpore refuses."""
    white_list = _env.aot_white_list()
    if white_list is None:
        return
    legal = os.path.realpath(white_list)
    if not os.path.isdir(legal) or os.path.commonpath([library, legal]) != legal:
        raise TypeError(f"For '{cls_name}', MS_CUSTOM_AOT_WHITE_LIST is set to '{white_list}', which does not contain "
                        f"mindspore-offload's kernel library '{library}'. Set MS_CUSTOM_AOT_WHITE_LIST to a folder "
                        f"that contains it (e.g. '{os.path.dirname(library)}') or unset it.")


def check_betas_and_eps(beta1, beta2, eps, cls_name):
    """Adam's beta1, beta2 and eps as both optimizers take them: Python floats, the betas in (0, 1), eps
    positive (their float32 images are checked by check_float32_hyperparameters)."""
    check_type("beta1", beta1, [float], cls_name)
    check_type("beta2", beta2, [float], cls_name)
    check_type("eps", eps, [float], cls_name)
    check_open_unit_interval("beta1", beta1, cls_name)
    check_open_unit_interval("beta2", beta2, cls_name)
    check_positive("eps", eps, cls_name)
