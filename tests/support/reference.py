"""A float64 NumPy reference of MindSpore's AdamNoUpdateParam, and the error bound float32 allows."""
import numpy as np

EPS32 = float(np.finfo(np.float32).eps)


def adam_reference(m, v, grad, *, lr, beta1, beta2, eps, beta1_power, beta2_power, use_nesterov=False):
    """One step in float64 from float32 state; hyper-parameters are rounded to float32 first, as the
    kernel receives them. Returns (m, v, delta, bound): bound is an elementwise allowance for delta."""
    f = lambda x: np.float64(np.float32(x))  # noqa: E731
    lr, beta1, beta2, eps, b1p, b2p = map(f, (lr, beta1, beta2, eps, beta1_power, beta2_power))
    m, v, g = (np.asarray(x, dtype=np.float64) for x in (m, v, grad))
    m_terms = np.abs(beta1 * m) + np.abs((1 - beta1) * g)
    m_new = beta1 * m + (1 - beta1) * g
    v_new = beta2 * v + (1 - beta2) * g * g
    lr_t = lr * np.sqrt(1 - b2p) / (1 - b1p)
    if use_nesterov:
        num = beta1 * m_new + (1 - beta1) * g
        num_terms = beta1 * (m_terms + np.abs(m_new)) + np.abs((1 - beta1) * g)
    else:
        num, num_terms = m_new, m_terms
    denom = np.sqrt(v_new) + eps
    delta = -lr_t * num / denom
    # Each rounding costs at most half an ulp; 8 of them (with cancellation measured by the terms)
    # is far below any real error and far above float32's own.
    bound = 8 * EPS32 * lr_t * num_terms / denom + np.finfo(np.float32).tiny
    return m_new, v_new, delta, bound, m_terms


def assert_step_close(m32, v32, d32, ref, *, ulps=4):
    """Elementwise: moments within a few ulps of their terms, delta within the bound."""
    m64, v64, d64, bound, m_terms = ref
    np.testing.assert_array_less(np.abs(m32 - m64), ulps * EPS32 * m_terms + np.finfo(np.float32).tiny)
    np.testing.assert_array_less(np.abs(v32 - v64), ulps * EPS32 * v64 + np.finfo(np.float32).tiny)
    np.testing.assert_array_less(np.abs(d32 - d64), bound)


def adamw_reference(param, m, v, grad, *, lr, beta1, beta2, eps, weight_decay=0.0):
    """One AdamW step (MindSpore's AdamWeightDecay) in float64 from float32 state, hyper-parameters rounded
    to float32 first. Returns (param, m, v, bounds): bounds are elementwise allowances for each."""
    f = lambda x: np.float64(np.float32(x))  # noqa: E731
    lr, beta1, beta2, eps, wd = map(f, (lr, beta1, beta2, eps, weight_decay))
    w, m, v, g = (np.asarray(x, dtype=np.float64) for x in (param, m, v, grad))
    tiny = np.finfo(np.float32).tiny
    m_new = m + (1 - beta1) * (g - m)
    v_new = v + (1 - beta2) * (g * g - v)
    # Each float32 rounding costs half an ulp of what it rounds; allow a few.
    m_err = 4 * EPS32 * (np.abs(m) + (1 - beta1) * (np.abs(g) + np.abs(m))) + tiny
    v_err = 4 * EPS32 * (np.abs(v) + (1 - beta2) * (g * g + np.abs(v))) + tiny
    denom = np.sqrt(v_new) + eps
    step = m_new / denom
    sqrt_err = np.minimum(np.sqrt(v_err), v_err / (2 * np.sqrt(v_new) + tiny))
    step_err = m_err / denom + np.abs(m_new) * sqrt_err / denom ** 2 + 4 * EPS32 * np.abs(step)
    w_new = w - lr * (step + wd * w)
    w_err = lr * (step_err + 2 * EPS32 * wd * np.abs(w)) + 2 * EPS32 * np.abs(w_new) + tiny
    return w_new, m_new, v_new, (w_err, m_err, v_err)


def assert_adamw_close(w32, m32, v32, ref):
    """Elementwise: the new parameter and moments within the reference's bounds."""
    w64, m64, v64, (w_err, m_err, v_err) = ref
    np.testing.assert_array_less(np.abs(m32 - m64), m_err)
    np.testing.assert_array_less(np.abs(v32 - v64), v_err)
    np.testing.assert_array_less(np.abs(w32 - w64), w_err)


def fma32(a, b, c):
    """a * b + c rounded once to float32 (nearest even), elementwise, for float32 arrays: what an fma
    instruction gives. The product is exact in float64 and the sum is rounded there first; that second
    rounding can only matter where the float64 sum lands exactly on a float32 midpoint and was inexact, and
    there the sign of the float64 sum's error decides."""
    a, b, c = (np.asarray(x, np.float32).astype(np.float64) for x in (a, b, c))
    with np.errstate(over="ignore", invalid="ignore"):
        p = a * b
        s = p + c
        bb = s - p
        err = (p - (s - bb)) + (c - bb)  # s + err == p + c exactly (TwoSum)
        r = s.astype(np.float32)
        up = np.nextafter(r, np.float32(np.inf))
        down = np.nextafter(r, np.float32(-np.inf))
        on_up = s == (r.astype(np.float64) + up.astype(np.float64)) / 2
        on_down = s == (r.astype(np.float64) + down.astype(np.float64)) / 2
    finite = np.isfinite(s) & np.isfinite(err)
    r = np.where(finite & on_up & (err > 0), up, r)
    r = np.where(finite & on_down & (err < 0), down, r)
    return r.astype(np.float32)


def adamw_float32_reference(param, m, v, grad, *, lr, beta1, beta2, eps, weight_decay=0.0):
    """AdamW's "float32" rounding (csrc/adamw.h: MindSpore's AVX-512 vector body), bit for bit: every
    operation of the formula rounded to float32 as its instruction rounds it. Returns (param, m, v)."""
    f = np.float32
    lr, beta1, beta2, eps, wd = map(f, (lr, beta1, beta2, eps, weight_decay))
    w, m, v, g = (np.asarray(x, dtype=np.float32) for x in (param, m, v, grad))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        m_new = fma32(f(1) - beta1, g, beta1 * m)
        v_new = fma32(g * g, f(1) - beta2, beta2 * v)
        u = fma32(wd, w, m_new / (np.sqrt(v_new) + eps))
        w_new = fma32(u, -lr, w)
    return w_new, m_new, v_new
