"""Our kernel against MindSpore's own ops.AdamNoUpdateParam on the same inputs (while MindSpore has it)."""
import subprocess
import sys

import numpy as np
import pytest

from mindspore_offload import kernel

ms = pytest.importorskip("mindspore")
if not hasattr(ms.ops, "AdamNoUpdateParam"):
    pytest.skip("this MindSpore no longer ships ops.AdamNoUpdateParam", allow_module_level=True)

EPS32 = np.finfo(np.float32).eps


def mindspore_step(m, v, g, b1p, b2p, lr, beta1, beta2, eps, nesterov):
    from mindspore import Parameter, Tensor

    op = ms.ops.AdamNoUpdateParam(use_nesterov=nesterov)
    mp, vp = Parameter(Tensor(m.copy()), name="m"), Parameter(Tensor(v.copy()), name="v")
    f32 = lambda x: Tensor(np.array([x], np.float32))  # noqa: E731
    d = op(mp, vp, f32(b1p), f32(b2p), f32(lr), f32(beta1), f32(beta2), f32(eps), Tensor(g)).asnumpy()
    return mp.asnumpy(), vp.asnumpy(), d


@pytest.mark.parametrize("nesterov", [False, True], ids=["plain", "nesterov"])
@pytest.mark.parametrize("n", [7, 64, 1000, 4099, 1 << 16])
def test_same_numbers_as_adam_no_update_param(n, nesterov):
    rng = np.random.default_rng(n)
    m = (rng.standard_normal(n) * 0.1).astype(np.float32)
    v = (np.abs(rng.standard_normal(n)) * 0.01).astype(np.float32)
    for t in range(1, 4):
        g = rng.standard_normal(n).astype(np.float32)
        args = (0.9**t, 0.999**t, 1e-3, 0.9, 0.999, 1e-8)
        ms_m, ms_v, ms_d = mindspore_step(m, v, g, *args, nesterov)
        d = kernel.adam_delta(m, v, g, beta1_power=args[0], beta2_power=args[1], lr=args[2], beta1=args[3],
                              beta2=args[4], eps=args[5], use_nesterov=nesterov)
        # MindSpore's vector body and ours round identically; its scalar tail contracts differently,
        # so a few tail elements may differ in the last bit of m or v.
        scale_m = np.abs(0.9 * m) + np.abs(0.1 * g)
        assert np.all(np.abs(m - ms_m) <= 2 * EPS32 * np.maximum(scale_m, np.abs(ms_m)))
        assert np.all(np.abs(v - ms_v) <= 2 * EPS32 * ms_v)
        lr_t = args[2] * np.sqrt(1 - args[1]) / (1 - args[0])
        allowed = 8 * EPS32 * lr_t * (np.abs(ms_m) + np.abs(g)) / (np.sqrt(ms_v) + 1e-8)
        assert np.all(np.abs(d - ms_d) <= allowed)
        if n >= 1000:
            assert np.mean(d == ms_d) > 0.99  # the body is bit-identical


@pytest.mark.parametrize("value", ["avx1024", "AVX512 "])
def test_bad_isa_environment_fails_at_import(value):
    code = "import mindspore_offload.kernel"
    proc = subprocess.run([sys.executable, "-c", code], env={"MINDSPORE_OFFLOAD_ISA": value, **_base_env()},
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "MINDSPORE_OFFLOAD_ISA must be one of 'avx512', 'avx2', 'scalar'" in proc.stderr


@pytest.mark.parametrize("isa", kernel.available_isas())
def test_isa_environment_forces_level(isa):
    code = "import mindspore_offload.kernel as k; print(k.active_isa())"
    proc = subprocess.run([sys.executable, "-c", code], env={"MINDSPORE_OFFLOAD_ISA": isa, **_base_env()},
                          capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == isa


def test_bad_thread_environment_fails_at_import():
    code = "import mindspore_offload.kernel"
    proc = subprocess.run([sys.executable, "-c", code],
                          env={"MINDSPORE_OFFLOAD_NUM_THREADS": "zero", **_base_env()}, capture_output=True, text=True)
    assert proc.returncode != 0 and "MINDSPORE_OFFLOAD_NUM_THREADS" in proc.stderr


def _base_env():
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("MINDSPORE_OFFLOAD_")}
