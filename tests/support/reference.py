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
