"""Calling the custom-op entry points through ctypes, the way MindSpore's CPU backend calls them, and
the inputs the AdamOffloadMaster* entries share."""
import ctypes

import numpy as np

from mindspore_offload import kernel

LIB = ctypes.CDLL(kernel.library_path())
# The AdamOffloadMaster* variants: a suffix for Nesterov and locking, a prefix for decay and unscaling,
# the latter with the (weight decay, loss scale) it takes.
SUFFIXES = ["", "Nesterov", "Locked", "NesterovLocked"]
PREPS = {"": (None, None), "Decay": (0.02, None), "Unscale": (None, 0.25), "DecayUnscale": (0.02, 0.25)}


def call(entry, arrays, dtypes=None, library=None):
    """arrays: the numpy arrays (the inputs, then the output), as MindSpore would pass them. Returns the
    entry point's status. ``library``: another build's path (the lab's), else the shipped one."""
    fn = getattr(LIB if library is None else ctypes.CDLL(library), entry)
    fn.restype = ctypes.c_int
    n = len(arrays)
    params = (ctypes.c_void_p * n)(*[a.ctypes.data for a in arrays])
    ndims = (ctypes.c_int * n)(*[a.ndim for a in arrays])
    shape_arrays = [np.array(a.shape, dtype=np.int64) for a in arrays]
    shapes = (ctypes.POINTER(ctypes.c_int64) * n)(
        *[s.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)) for s in shape_arrays])
    names = dtypes or [str(a.dtype) for a in arrays]
    c_dtypes = (ctypes.c_char_p * n)(*[d.encode() for d in names])
    return fn(n, params, ndims, shapes, c_dtypes, None, None)


def inputs(param, w, m, v, g, hyper, wd, scale):
    """The thirteen inputs every AdamOffloadMaster* entry shares, in the order it takes them."""
    s = lambda x, shape=(): np.full(shape, x, dtype=np.float32)  # noqa: E731
    return [param, w, m, v, s(hyper["beta1_power"], (1,)), s(hyper["beta2_power"], (1,)), s(hyper["lr"]),
            s(hyper["beta1"]), s(hyper["beta2"]), s(hyper["eps"]), s(wd or 0.0), s(scale or 1.0), g]


def written(w, dtype, every=3):
    """The 16-bit parameter as the master rounded, with every third element overwritten since (a
    load or set_data): those elements' masters restart from it."""
    param = w.astype(dtype)
    param[::every] = (w[::every] * 2.0 + 1.0).astype(dtype)
    return param


def with_fault(arrays, case, scalar):
    """An entry's arrays (its inputs, the gradient at index 8, then its output) and the dtypes to name,
    with one fault: "too few" (the output left out), "float16 gradient" (the gradient's dtype named
    float16), "size mismatch" (the gradient one element short) or "empty scalar" (the array at index
    `scalar` empty). Any other case comes back as it was, for the caller to break. Returns (arrays,
    dtypes); dtypes is None where the arrays' own are named."""
    arrays, dtypes = list(arrays), None
    if case == "too few":
        arrays = arrays[:-1]
    elif case == "float16 gradient":
        dtypes = [str(a.dtype) for a in arrays]
        dtypes[8] = "float16"
    elif case == "size mismatch":
        arrays[8] = arrays[8][:32].copy()
    elif case == "empty scalar":
        arrays[scalar] = np.empty((0,), np.float32)
    return arrays, dtypes
