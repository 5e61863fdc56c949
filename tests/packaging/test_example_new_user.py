"""examples/lenet5.py as a new user meets it: an environment with MindSpore and mindspore-offload, and
nothing else.

A real new user runs `pip install mindspore-offload` into an environment holding MindSpore. Doing that
per test (a MindSpore wheel is ~1 GB, and the package build compiles the kernel) takes minutes and needs
the network, so the test builds the same environment from what is already installed, in about two
seconds:

- a fresh venv (`python -m venv --without-pip`) with system site packages off, so nothing of the
  machine's or the dev venv's leaks in; the example runs under that venv's interpreter with no
  PYTHONPATH;
- into its site-packages, links to exactly the distributions `pip install mindspore-offload` plus
  MindSpore would give: MindSpore and numpy with their declared requirements, followed recursively
  through the installed metadata (extras not taken), and this checkout's `mindspore_offload` package
  (the one under test, built in place). scikit-learn is not among them, as it is not for a user.

In it: `--help`, the default run (no scikit-learn: it must stop with a message naming what to install,
not a traceback), and a short real run on MNIST-format files. What the links cannot show is that pip
resolves those requirements the same way from an index; the metadata they are followed through is the
one pip wrote. The `[examples]` extra itself is checked in pyproject.toml. The file takes about 26 s
on two shared cores, almost all of it three MindSpore imports.
"""
import importlib.metadata as metadata
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement

import mindspore_offload
from support.paths import ROOT

EXAMPLE = ROOT / "examples" / "lenet5.py"


def _closure(names):
    """The installed distributions `names` need, following their requirements without extras."""
    found, todo = {}, list(names)
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in found:
            continue
        found[key] = metadata.distribution(name)
        for line in found[key].requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return found


def _top_level_entries(distribution):
    """The files and folders a distribution put directly in site-packages (its dist-info included)."""
    entries = set()
    for file in distribution.files or []:
        top = file.parts[0]
        if top not in ("..", "__pycache__"):
            entries.add(Path(distribution.locate_file(top)))
    return entries


@pytest.fixture(scope="module")
def new_user_python(tmp_path_factory):
    venv = tmp_path_factory.mktemp("new_user") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    distributions = _closure(["mindspore", "numpy"])
    assert "scikit-learn" not in distributions
    for distribution in distributions.values():
        for entry in _top_level_entries(distribution):
            if entry.exists() and not (site / entry.name).exists():
                (site / entry.name).symlink_to(entry)
    (site / "mindspore_offload").symlink_to(Path(mindspore_offload.__file__).parent)
    return venv / "bin" / "python"


def _run(python, *args, cwd):
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    return subprocess.run([str(python), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_the_environment_is_a_new_users(new_user_python, tmp_path):
    """Found without importing them (a MindSpore import costs seconds; the runs below do it)."""
    probe = ("import importlib.util as u, sys; print(sys.prefix, u.find_spec('sklearn'), "
             "u.find_spec('mindspore').origin, u.find_spec('mindspore_offload').origin)")
    result = _run(new_user_python, "-c", probe, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    prefix, sklearn, mindspore, package = result.stdout.split()
    assert prefix == str(new_user_python.parent.parent)
    assert sklearn == "None"
    assert mindspore.startswith(prefix)
    assert Path(package).resolve() == Path(mindspore_offload.__file__).resolve()


def test_help_works_without_scikit_learn(new_user_python, tmp_path):
    result = _run(new_user_python, str(EXAMPLE), "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--data-dir" in result.stdout and "--epochs" in result.stdout


def test_missing_scikit_learn_says_what_to_install(new_user_python, tmp_path):
    result = _run(new_user_python, str(EXAMPLE), "--epochs", "1", cwd=tmp_path)
    assert result.returncode == 1
    assert "pip install 'mindspore-offload[examples]'" in result.stderr
    assert "--data-dir" in result.stderr
    assert "Traceback" not in result.stderr
    assert "accuracy" not in result.stdout


def test_examples_extra_brings_scikit_learn():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11 and later
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(Requirement(line).name == "scikit-learn" for line in extras["examples"])


def _write_idx(path, array):
    """MNIST's idx format: a magic number with the dimension count, big-endian sizes, the bytes."""
    header = (0x0800 | array.ndim).to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_short_run_on_mnist_files_needs_no_scikit_learn(new_user_python, tmp_path):
    """Two PyNative steps on 64 random 28x28 images in MNIST's files: a run end to end, kept short."""
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 64), ("t10k", 32)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (count, 28, 28)))
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, count))
    result = _run(new_user_python, str(EXAMPLE), "--data-dir", str(tmp_path), "--epochs", "1", "--mode", "pynative",
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.fullmatch(r"accuracy: \d\.\d{4}", result.stdout.strip().splitlines()[-1])
