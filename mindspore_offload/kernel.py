"""The host Adam kernel, on NumPy arrays.

This is the engine under :class:`mindspore_offload.AdamOffload`: one pass over a parameter's gradient
that updates the moments in place and returns the step to add to the parameter, exactly as MindSpore's
``ops.AdamNoUpdateParam`` computes it. It runs at the widest instruction-set level this CPU offers
(AVX-512, AVX2 with FMA, NEON on aarch64, or portable scalar code), chosen once at import, and splits large arrays over
a persistent pool of threads with the GIL released. Every level and every thread count gives the same
bits.

Environment (read in one place, mindspore_offload/_env.py; a bad value fails the import with a ValueError
naming the allowed values):
    MINDSPORE_OFFLOAD_ISA: force a level ("avx512", "avx2", "neon" or "scalar"); one this CPU lacks is an error too.
    MINDSPORE_OFFLOAD_NUM_THREADS: the number of threads, a whole number in [1, 1024].
    MINDSPORE_OFFLOAD_STREAM_MIN, MINDSPORE_OFFLOAD_PREFETCH_MIN: elements from which the delta is written
        with streaming stores / a thread's chunk prefetches ahead (default: L3 / 16 bytes; L2 / 4 bytes on
        Intel, never elsewhere; see docs/performance.md).
    MINDSPORE_OFFLOAD_SPIN_US: how long, in microseconds, an idle pool thread spins for the next pass before
        it sleeps, a whole number in [0, 1000000] (default 100; 0 sleeps at once).
Without MINDSPORE_OFFLOAD_NUM_THREADS the pool takes this rank's share of the CPUs (all of them for a
single process; see mindspore_offload/_threads.py).
"""
import math
import numbers
import os

import numpy as np

from mindspore_offload import _C, _env
from mindspore_offload._threads import default_num_threads

__all__ = [
    "adam_delta",
    "adam_apply",
    "adam_master_step",
    "adamw_step",
    "adamw_master_step",
    "available_isas",
    "active_isa",
    "set_isa",
    "get_num_threads",
    "set_num_threads",
    "library_path",
]


def _apply_environment():
    """The level, the thread count and the size thresholds, from the variables _env read and checked."""
    forced = _env.isa()
    if forced is not None:
        available = _C.available_isas()
        if forced not in available:
            raise ValueError(f"MINDSPORE_OFFLOAD_ISA='{forced}' is not supported by this CPU; the levels available "
                             f"here are: {', '.join(available)}. Choose one of them or unset it.")
        _C.set_isa(forced)
    threads = _env.num_threads()
    _C.set_num_threads(threads if threads is not None else default_num_threads(_env.launcher()))
    _C.override_thresholds(_env.stream_min(), _env.prefetch_min(), _env.spin_us())


_apply_environment()


def available_isas():
    """The instruction-set levels this CPU can run, best first: from "avx512", "avx2", "scalar" on x86-64,
    "neon", "scalar" on aarch64."""
    return list(_C.available_isas())


def active_isa():
    """The level the kernel runs at now."""
    return _C.active_isa()


def set_isa(name):
    """Forces a level for this process (tests and benchmarks); returns the previous one."""
    if not isinstance(name, str):
        raise TypeError(f"For 'set_isa', the 'name' must be a str, but got {type(name).__name__}.")
    previous = _C.active_isa()
    _C.set_isa(name)
    return previous


def get_num_threads():
    """How many threads (the caller included) a large array is split over."""
    return _C.get_num_threads()


def set_num_threads(n):
    """Sets how many threads (1 to 1024) a large array is split over; 1 keeps all work on the calling thread."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"For 'set_num_threads', the 'n' must be an int, but got {type(n).__name__}.")
    if not 1 <= n <= _env.MAX_NUM_THREADS:
        raise ValueError(f"For 'set_num_threads', the 'n' must be in range [1, {_env.MAX_NUM_THREADS}], but got {n}.")
    _C.set_num_threads(int(n))


def library_path():
    """The shared library that holds both this module and the MindSpore custom-op entry points."""
    return os.path.realpath(_C.__file__)


def _real(fn, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"For '{fn}', the '{name}' must be a float, but got {type(value).__name__}.")
    with np.errstate(over="ignore"):  # what the kernel will compute with: 1e-50 is 0 there, 1e39 is inf
        value = float(np.float32(value))
    if not math.isfinite(value):
        raise ValueError(f"For '{fn}', the '{name}' must be finite, but got {value}.")
    return value


def _in_range(fn, name, value, low, high, low_closed, high_closed):
    above = value >= low if low_closed else value > low
    below = value <= high if high_closed else value < high
    if not (above and below):
        interval = f"{'[' if low_closed else '('}{low}, {high}{']' if high_closed else ')'}"
        raise ValueError(f"For '{fn}', the '{name}' must be in range {interval}, but got {value}.")


def _array(fn, name, value):
    if not isinstance(value, np.ndarray):
        raise TypeError(f"For '{fn}', the '{name}' must be a numpy.ndarray of float32, but got "
                        f"{type(value).__name__}. Convert it with numpy.asarray(x, dtype=numpy.float32).")
    return value


def _check_hyper(fn, arrays, hyper):
    """The opening checks Adam and AdamW share: the arrays' types, the hyper-parameters as finite floats and
    the ranges of lr, beta1, beta2 and eps. Returns the floats by name."""
    for name, array in arrays.items():
        _array(fn, name, array)
    values = {name: _real(fn, name, value) for name, value in hyper.items()}
    _in_range(fn, "lr", values["lr"], 0.0, math.inf, True, False)
    _in_range(fn, "beta1", values["beta1"], 0.0, 1.0, False, False)
    _in_range(fn, "beta2", values["beta2"], 0.0, 1.0, False, False)
    _in_range(fn, "eps", values["eps"], 0.0, math.inf, False, False)
    return values


def _check_flags_and_shapes(fn, flags, arrays):
    """The closing checks Adam and AdamW share: each flag a bool, every array of m's shape."""
    for name, flag in flags.items():
        if not isinstance(flag, bool):
            raise TypeError(f"For '{fn}', the '{name}' must be a bool, but got {type(flag).__name__}.")
    shape = arrays["m"].shape
    for name, array in arrays.items():
        if array.shape != shape:
            raise ValueError(f"For '{fn}', the '{name}' must have the shape of 'm' {shape}, but got {array.shape}.")


def _check_step(fn, arrays, hyper, use_nesterov, use_locking):
    """Every Python-side check of one Adam step; returns the hyper-parameters as floats, in _C's order."""
    values = _check_hyper(fn, arrays, hyper)
    if values["beta1_power"] == 1.0:
        raise ValueError(f"For '{fn}', the 'beta1_power' must not be 1 (step 0: no step taken yet); "
                         "pass beta1**t for step t >= 1.")
    _in_range(fn, "beta1_power", values["beta1_power"], 0.0, 1.0, True, False)
    _in_range(fn, "beta2_power", values["beta2_power"], 0.0, 1.0, True, True)
    _check_flags_and_shapes(fn, {"use_nesterov": use_nesterov, "use_locking": use_locking}, arrays)
    return [values[k] for k in ("lr", "beta1", "beta2", "eps", "beta1_power", "beta2_power")]


def adam_delta(m, v, grad, *, lr, beta1, beta2, eps, beta1_power, beta2_power, use_nesterov=False, out=None,
               use_locking=False):
    r"""One Adam step of MindSpore's ``AdamNoUpdateParam``, on the host.

    .. math::
        \begin{array}{ll}
            m \leftarrow \beta_1 m + (1 - \beta_1) g \\
            v \leftarrow \beta_2 v + (1 - \beta_2) g^2 \\
            l = lr \cdot \sqrt{1 - \beta_2^t} / (1 - \beta_1^t) \\
            \Delta = -l \cdot m / (\sqrt{v} + \epsilon)
        \end{array}

    With ``use_nesterov`` the numerator is :math:`\beta_1 m + (1 - \beta_1) g` (with the new m). The eps is
    not bias-corrected, as in MindSpore (PyTorch and DeepSpeed place it differently).

    Args:
        m, v (numpy.ndarray): float32 moments, C-contiguous and writeable; updated in place.
        grad (numpy.ndarray): float32 gradient of the same shape.
        lr (float): learning rate, >= 0.
        beta1, beta2 (float): decay rates in (0.0, 1.0).
        eps (float): > 0.
        beta1_power, beta2_power (float): beta1**t and beta2**t for this step t >= 1.
        use_nesterov (bool): the Nesterov variant.
        out (numpy.ndarray): where to write the delta (float32, same shape); a new array when None.
        use_locking (bool): make updates of the same ``m`` from several threads mutually exclusive.

    Returns:
        numpy.ndarray, the delta to add to the parameter (``out`` when given).

    Raises:
        TypeError: an array is not a float32 numpy.ndarray, or a hyper-parameter is not a number.
        ValueError: shapes differ, arrays share memory, an array written is read-only or not C-contiguous,
            a hyper-parameter is out of range, or ``beta1_power`` is 1 (no step taken). Nothing is written
            when an error is raised.
    """
    arrays = {"m": m, "v": v, "grad": grad}
    if out is not None:
        arrays["out"] = out
    hyper = dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, beta1_power=beta1_power, beta2_power=beta2_power)
    values = _check_step("adam_delta", arrays, hyper, use_nesterov, use_locking)
    if out is None:
        out = np.empty(grad.shape, dtype=np.float32)
    _C.adam_delta(m, v, grad, out, *values, use_nesterov, use_locking)
    return out


def adam_apply(param, m, v, grad, *, lr, beta1, beta2, eps, beta1_power, beta2_power, use_nesterov=False,
               use_locking=False):
    """:func:`adam_delta` and ``param += delta`` in one pass, for a parameter in host memory.

    The addition rounds exactly as ``param + adam_delta(...)`` does (and as MindSpore's
    ``assign_add(param, delta)``); no delta array is written, which saves memory traffic.

    Args:
        param (numpy.ndarray): float32 parameter of the same shape as m; updated in place.
        The rest: as :func:`adam_delta`.

    Returns:
        numpy.ndarray, ``param``.

    Raises:
        TypeError, ValueError: as :func:`adam_delta`; nothing is written when an error is raised.
    """
    hyper = dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, beta1_power=beta1_power, beta2_power=beta2_power)
    values = _check_step("adam_apply", {"param": param, "m": m, "v": v, "grad": grad}, hyper, use_nesterov,
                         use_locking)
    _C.adam_apply(param, m, v, grad, *values, use_nesterov, use_locking)
    return param


def _sixteen_bit_kind(fn, name, array):
    """'float16' or 'bfloat16' (NumPy has no bfloat16 of its own: MindSpore's and ml_dtypes' are accepted)."""
    _array(fn, name, array)
    if array.dtype == np.float16:
        return "float16"
    if array.dtype.name == "bfloat16" and array.dtype.itemsize == 2:
        return "bfloat16"
    raise TypeError(f"For '{fn}', the '{name}' must be a float16 or bfloat16 numpy.ndarray, but got dtype "
                    f"{array.dtype}.")


def _master_arrays(fn, m, v, master, grad, out, param):
    """The 16-bit passes' arrays by name, ``out`` and ``param`` (when given) checked to be of the gradient's
    16-bit kind; returns (that kind, the arrays)."""
    half = _sixteen_bit_kind(fn, "grad", grad)
    arrays = {"m": m, "v": v, "master": master, "grad": grad}
    if out is not None:
        if _sixteen_bit_kind(fn, "out", out) != half:
            raise TypeError(f"For '{fn}', the 'out' must have the gradient's dtype {grad.dtype}, but got {out.dtype}.")
        arrays["out"] = out
    if param is not None:
        if _sixteen_bit_kind(fn, "param", param) != half:
            raise TypeError(f"For '{fn}', the 'param' must have the gradient's dtype {grad.dtype}, but got "
                            f"{param.dtype}.")
        if param is not out:
            arrays["param"] = param
    return half, arrays


def adam_master_step(master, m, v, grad, *, lr, beta1, beta2, eps, beta1_power, beta2_power, use_nesterov=False,
                     weight_decay=None, grad_scale=None, out=None, param=None, use_locking=False):
    r"""One Adam step for a 16-bit parameter whose float32 master weights live on the host.

    The gradient (float16 or bfloat16) is widened to float32 exactly; then, in float32,
    :math:`g \leftarrow w \cdot wd + g` when ``weight_decay`` is given and :math:`g \leftarrow g \cdot s`
    when ``grad_scale`` is given (what MindSpore's optimizer does to a float32 gradient, with the master
    :math:`w` as the weight); then :func:`adam_delta`'s update of ``m`` and ``v`` and
    :math:`w \leftarrow w + \Delta`, rounded as ``w + adam_delta(...)``. The new 16-bit parameter is the
    master rounded to nearest even (overflow to infinity, NaN stays NaN), written to ``out``.

    With ``param`` (the 16-bit parameter as it is now), the pass first compares it with the master
    rounded: an element where the two differ was written since the last step (a checkpoint loaded, a
    ``set_data``), and its master restarts from the written value, widened exactly. Elements nobody wrote
    (and elements written with the value they already had) keep their master. This is how AdamOffload
    never undoes a write to a 16-bit parameter.

    Every instruction-set level and thread count gives the same bits, the conversions included.

    Args:
        master, m, v (numpy.ndarray): float32, C-contiguous, writeable; updated in place.
        grad (numpy.ndarray): float16 or bfloat16 gradient of the same shape.
        weight_decay (float): decay the gradient with the master first; None (default) skips it.
        grad_scale (float): multiply the gradient by this (1 / loss scale) after the decay; None skips it.
        out (numpy.ndarray): where to write the new parameter (grad's dtype, same shape; may be the
            parameter itself); a new array when None.
        param (numpy.ndarray): the 16-bit parameter as it is now (grad's dtype, same shape; may be ``out``),
            read before anything is written; None (default) skips the comparison.
        The rest: as :func:`adam_delta`.

    Returns:
        numpy.ndarray, the new 16-bit parameter (``out`` when given).

    Raises:
        TypeError: an array has the wrong type or dtype, or a hyper-parameter is not a number.
        ValueError: as :func:`adam_delta`. Nothing is written when an error is raised.
    """
    fn = "adam_master_step"
    half, arrays = _master_arrays(fn, m, v, master, grad, out, param)
    hyper = dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, beta1_power=beta1_power, beta2_power=beta2_power)
    values = _check_step(fn, arrays, hyper, use_nesterov, use_locking)
    decay = weight_decay is not None
    unscale = grad_scale is not None
    wd = _real(fn, "weight_decay", weight_decay) if decay else 0.0
    scale = _real(fn, "grad_scale", grad_scale) if unscale else 1.0
    if out is None:
        out = np.empty(grad.shape, dtype=grad.dtype)
    current = None if param is None else param.view(np.uint16)
    _C.adam_master_step(master, m, v, grad.view(np.uint16), out.view(np.uint16), current, *values, use_nesterov, half,
                        wd, decay, scale, unscale, use_locking)
    return out


def _check_adamw(fn, arrays, hyper, use_locking):
    """Every Python-side check of one AdamW step; returns the hyper-parameters as floats, in _C's order."""
    values = _check_hyper(fn, arrays, hyper)
    _in_range(fn, "weight_decay", values["weight_decay"], 0.0, math.inf, True, False)
    _check_flags_and_shapes(fn, {"use_locking": use_locking}, arrays)
    return [values[k] for k in ("lr", "beta1", "beta2", "eps", "weight_decay")]


# AdamW's two roundings (csrc/adamw.h), the default first: "double" is MindSpore's scalar loop (nn.AdamWeightDecay's
# bits on a CPU without AVX-512), "float32" its AVX-512 vector body's formula (Adam's speed).
ROUNDINGS = ("double", "float32")


def _float32_rounding(fn, rounding):
    """True for AdamW's "float32" rounding, False for "double"; anything else raises."""
    if not isinstance(rounding, str):
        raise TypeError(f"For '{fn}', the 'rounding' must be a str, but got {type(rounding).__name__}.")
    if rounding not in ROUNDINGS:
        listed = " or ".join(repr(choice) for choice in ROUNDINGS)
        raise ValueError(f"For '{fn}', the 'rounding' must be {listed}, but got {rounding!r}.")
    return rounding == "float32"


def adamw_step(param, m, v, grad, *, lr, beta1, beta2, eps, weight_decay=0.0, out=None, use_locking=False,
               rounding="double"):
    r"""One AdamW step of MindSpore's ``AdamWeightDecay``, on the host: no bias correction, and the weight
    decay added to the update, not to the gradient.

    .. math::
        \begin{array}{ll}
            m \leftarrow m + (1 - \beta_1)(g - m) \\
            v \leftarrow v + (1 - \beta_2)(g^2 - v) \\
            w \leftarrow w - lr \cdot \left(m / (\sqrt{v} + \epsilon) + wd \cdot w\right)
        \end{array}

    ``rounding="double"`` (default) rounds exactly as MindSpore's CPU kernel does on a CPU without
    AVX-512: m and v in float32 with fused multiply-adds, the last line in double precision and rounded to
    float32 once. ``rounding="float32"`` computes MindSpore's AVX-512 vector body's formula, all in float32
    (csrc/adamw.h): no double divide or square root, so it runs at the speed of Adam's pass. Either way
    every level and thread count gives the same bits.

    Args:
        param (numpy.ndarray): float32 parameter, read (and written when ``out`` is ``param`` or None).
        m, v (numpy.ndarray): float32 moments of param's shape, C-contiguous and writeable; updated in place.
        grad (numpy.ndarray): float32 gradient of the same shape.
        lr (float): learning rate, >= 0.
        beta1, beta2 (float): decay rates in (0.0, 1.0).
        eps (float): > 0.
        weight_decay (float): >= 0; 0 (default) decays nothing.
        out (numpy.ndarray): where to write the new parameter (float32, same shape); None (default) writes
            it into ``param`` itself.
        use_locking (bool): make updates of the same ``m`` from several threads mutually exclusive.
        rounding (str): ``"double"`` (default) or ``"float32"``, as above.

    Returns:
        numpy.ndarray, the new parameter (``out``, or ``param`` when ``out`` is None).

    Raises:
        TypeError: an array is not a float32 numpy.ndarray, or a hyper-parameter is not a number.
        ValueError: shapes differ, arrays share memory, an array written is read-only or not C-contiguous,
            or a hyper-parameter is out of range. Nothing is written when an error is raised.
    """
    fn = "adamw_step"
    arrays = {"m": m, "v": v, "param": param, "grad": grad}
    if out is not None and out is not param:
        arrays["out"] = out
    hyper = dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay)
    values = _check_adamw(fn, arrays, hyper, use_locking)
    float32 = _float32_rounding(fn, rounding)
    if out is None:
        out = param
    _C.adamw_step(param, m, v, grad, out, *values, use_locking, float32)
    return out


def adamw_master_step(master, m, v, grad, *, lr, beta1, beta2, eps, weight_decay=0.0, out=None, param=None,
                      use_locking=False, rounding="double"):
    """:func:`adamw_step` for a 16-bit parameter whose float32 master weights live on the host.

    The gradient (float16 or bfloat16) is widened to float32 exactly; the master then takes
    :func:`adamw_step`'s step bit for bit, the decay reading the master; the new 16-bit parameter is the
    master rounded to nearest even, written to ``out``. ``param`` restarts the master where it was written,
    as in :func:`adam_master_step`.

    Args:
        master, m, v (numpy.ndarray): float32, C-contiguous, writeable; updated in place.
        grad (numpy.ndarray): float16 or bfloat16 gradient of the same shape.
        out, param: as :func:`adam_master_step`'s.
        The rest (``rounding`` too): as :func:`adamw_step`.

    Returns:
        numpy.ndarray, the new 16-bit parameter (``out`` when given).

    Raises:
        TypeError, ValueError: as :func:`adam_master_step`. Nothing is written when an error is raised.
    """
    fn = "adamw_master_step"
    half, arrays = _master_arrays(fn, m, v, master, grad, out, param)
    hyper = dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay)
    values = _check_adamw(fn, arrays, hyper, use_locking)
    float32 = _float32_rounding(fn, rounding)
    if out is None:
        out = np.empty(grad.shape, dtype=grad.dtype)
    current = None if param is None else param.view(np.uint16)
    _C.adamw_master_step(master, m, v, grad.view(np.uint16), out.view(np.uint16), current, *values, half, use_locking,
                         float32)
    return out
