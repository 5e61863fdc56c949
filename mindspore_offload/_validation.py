"""Constructor checks, with MindSpore's exception types and wording."""
import os


def check_type(name, value, kinds, cls_name):
    """MindSpore's check_value_type: bool is never accepted where it is not asked for."""
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, tuple(kinds)):
        expected = kinds[0].__name__ if len(kinds) == 1 else str([k.__name__ for k in kinds])
        raise TypeError(f"For '{cls_name}', the type of '{name}' should be '{expected}', but got type "
                        f"'{type(value).__name__}'.")


def check_open_unit_interval(name, value, cls_name):
    if not 0.0 < value < 1.0:
        raise ValueError(f"For '{cls_name}', the '{name}' must be in range of (0.0, 1.0), but got {value} with type "
                         f"'{type(value).__name__}'.")


def check_positive(name, value, cls_name):
    if not value > 0:
        raise ValueError(f"For '{cls_name}', the '{name}' must be float and must > 0, but got '{value}' with type "
                         f"'{type(value).__name__}'.")


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


def check_gradient_dtypes(dtypes, cls_name):
    """Called from the custom op's type inference, at graph compile time: before any state is touched."""
    import mindspore as ms

    names = ("moment1", "moment2", "beta1_power", "beta2_power", "learning_rate", "beta1", "beta2", "eps", "gradient")
    for name, dtype in zip(names, dtypes):
        while hasattr(dtype, "element_type"):  # Ref[Tensor[Float32]] and Tensor[Float32] to Float32
            dtype = dtype.element_type()
        if dtype != ms.float32:
            raise TypeError(f"For '{cls_name}', the '{name}' must be float32, but got {dtype}. Cast the gradients "
                            "to float32 before the optimizer (the parameters and moments are float32).")


def check_gradient_shapes(shapes, cls_name):
    """Called from the custom op's shape inference: the gradient must match its moment."""
    moment, gradient = tuple(shapes[0]), tuple(shapes[-1])
    if moment != gradient:
        raise ValueError(f"For '{cls_name}', a gradient of shape {gradient} does not match its parameter of shape "
                         f"{moment}.")


def check_white_list(library, cls_name):
    """MS_CUSTOM_AOT_WHITE_LIST, when set, must contain our library; say how to fix it before MindSpore refuses."""
    white_list = os.environ.get("MS_CUSTOM_AOT_WHITE_LIST")
    if white_list is None:
        return
    legal = os.path.realpath(white_list)
    if not os.path.isdir(legal) or os.path.commonpath([library, legal]) != legal:
        raise TypeError(f"For '{cls_name}', MS_CUSTOM_AOT_WHITE_LIST is set to '{white_list}', which does not contain "
                        f"mindspore-offload's kernel library '{library}'. Set MS_CUSTOM_AOT_WHITE_LIST to a folder "
                        f"that contains it (e.g. '{os.path.dirname(library)}') or unset it.")
