"""The source distribution builds and works on its own: made from this checkout, installed with pip into
a fresh virtual environment (no MindSpore, no access to this checkout), then imported and run once.

This catches a file the build needs but the sdist leaves out (csrc headers, for one), which no test
that imports the in-place build can see. The fresh environment gets its build tools at the versions
this one has, from the configured package index (or pip's cache), and builds without isolation so no
other download is needed.
"""
import os
import subprocess
import sys
import textwrap
from importlib import metadata

import pytest

from support import paths

ROOT = str(paths.ROOT)

SMOKE = textwrap.dedent("""
    import os, sys
    import numpy as np
    import mindspore_offload
    from mindspore_offload import kernel

    here = os.path.realpath(mindspore_offload.__file__)
    assert here.startswith(os.path.realpath(sys.prefix)), here  # the installed copy, not the checkout
    print(mindspore_offload.__version__, kernel.active_isa(), kernel.available_isas())

    rng = np.random.default_rng(7)
    n = 1000
    m0, g = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    v0 = rng.random(n).astype(np.float32)
    b1, b2, lr, eps, t = np.float32(0.9), np.float32(0.999), np.float32(1e-3), np.float32(1e-8), 3
    m, v = m0.copy(), v0.copy()
    delta = kernel.adam_delta(m, v, g, lr=lr, beta1=b1, beta2=b2, eps=eps, beta1_power=b1**t, beta2_power=b2**t)

    # float64 reference; each float32 result may be off by a few roundings of the terms it sums
    # (tests/support/reference.py has the full reference, which this installed copy cannot import).
    f = lambda x: np.float64(np.float32(x))
    b1, b2, lr, eps, b1p, b2p = map(f, (b1, b2, lr, eps, b1**t, b2**t))
    m_terms = np.abs(b1 * m0) + np.abs((1 - b1) * g)
    m_ref = b1 * m0 + (1 - b1) * f(g)
    v_ref = b2 * v0 + (1 - b2) * f(g) * g
    denom = np.sqrt(v_ref) + eps
    delta_ref = -lr * np.sqrt(1 - b2p) / (1 - b1p) * m_ref / denom
    ulp = float(np.finfo(np.float32).eps)
    bounds = {"m": 4 * ulp * m_terms, "v": 4 * ulp * v_ref,
              "delta": 8 * ulp * lr * np.sqrt(1 - b2p) / (1 - b1p) * m_terms / denom}
    for name, got, want in (("m", m, m_ref), ("v", v, v_ref), ("delta", delta, delta_ref)):
        np.testing.assert_array_less(np.abs(got - want), bounds[name] + 1e-38, err_msg=name)
    print("smoke test passed")
""")


def run(*args, cwd):
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.slow
def test_sdist_installs_into_a_fresh_venv_and_runs(tmp_path):
    dist = tmp_path / "dist"
    # egg_info into tmp_path too, so the checkout is left as it was.
    run(sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path), "sdist", "--dist-dir", str(dist),
        cwd=ROOT)
    (sdist,) = dist.glob("mindspore[-_]offload-*.tar.gz")  # the separator depends on the setuptools version

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", str(venv), cwd=tmp_path)
    python = str(venv / "bin" / "python")
    tools = [f"{name}=={metadata.version(name)}" for name in ("numpy", "pybind11", "setuptools", "wheel")]
    run(python, "-m", "pip", "install", "-q", *tools, cwd=tmp_path)
    run(python, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps", str(sdist), cwd=tmp_path)

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("MINDSPORE_OFFLOAD_")}
    result = subprocess.run([python, "-c", SMOKE], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "smoke test passed" in result.stdout
