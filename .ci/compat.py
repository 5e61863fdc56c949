"""`make compat`: the parity subset (the tests marked `compat`) on every MindSpore release pip can install here.

For each version, one after another (each MindSpore wheel is about 800 MB and the runs share the CPU):

1. a virtual environment ``.compat/<version>`` with ``mindspore==<version>``, ``numpy<2`` and pytest, made
   once and reused while its ``.ready`` file is there (``rm -rf .compat`` starts afresh);
2. this package installed into it, not editable, from one wheel built at the start of the run from a copy of
   the working tree (so no environment shares an in-place ``_C`` with another, and no stale ``build/`` object
   goes in), then checked to import from that environment;
3. ``pytest -m compat`` on the source tree's tests, run with ``python -P`` so that the source tree's
   ``mindspore_offload`` (which may hold an in-place build for another MindSpore) is not on ``sys.path``.

A table (MindSpore, NumPy, result, passed/failed/skipped, minutes) is printed and written with the failing
test ids to ``docs/results/compat-<date>.md`` (``compat-<date>-<versions>.md`` when versions are named); the
exit status is 1 when any version did not pass.

    python .ci/compat.py                  # every version `pip index versions mindspore` lists
    python .ci/compat.py 2.7.0 2.10.0     # just these
"""
import argparse
import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPAT = ROOT / ".compat"
RESULTS = ROOT / "docs" / "results"
# What every environment gets beside MindSpore: NumPy below 2 (MindSpore's datasets need it) at the floor
# the package declares, and the test runner.
EXTRAS = ("numpy>=1.25,<2", "pytest>=7")
# Left out of the copy the wheel is built from: build outputs, environments, and run debris.
NOT_COPIED = shutil.ignore_patterns(".git", ".compat", ".venv", "build", "dist", "*.egg-info", "*.so", "*.o",
                                    "__pycache__", ".pytest_cache", ".hypothesis", "rank_*", "kernel_meta")


def log(message):
    print(f"[compat {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(*command, cwd=ROOT, check=True, **kwargs):
    log(" ".join(str(c) for c in command))
    return subprocess.run([str(c) for c in command], cwd=cwd, check=check, **kwargs)


def available_versions(python):
    """The MindSpore versions pip finds for this Python and platform, oldest first (pip lists only the ones
    with a wheel that installs here, and no pre-releases)."""
    out = subprocess.run([python, "-m", "pip", "index", "versions", "mindspore"], capture_output=True, text=True,
                         check=True).stdout
    match = re.search(r"^Available versions:\s*(.+)$", out, re.MULTILINE)
    if not match:
        raise SystemExit(f"`pip index versions mindspore` listed no versions:\n{out}")
    return sorted((v.strip() for v in match.group(1).split(",")), key=version_key)


def version_key(version):
    """2.7.1.post1 after 2.7.1, 2.10.0 after 2.9.0."""
    release, _, post = version.partition(".post")
    return tuple(int(x) for x in release.split(".")), int(post or -1)


def build_wheel(python, into):
    """One wheel of the working tree, built in an isolated environment from a copy of it."""
    with tempfile.TemporaryDirectory(prefix="mindspore-offload-compat-") as tmp:
        source = Path(tmp) / "src"
        shutil.copytree(ROOT, source, ignore=NOT_COPIED)
        if into.exists():
            shutil.rmtree(into)
        run(python, "-m", "pip", "wheel", "-q", "--no-deps", "-w", into, source, cwd=tmp)
    (wheel,) = into.glob("mindspore_offload-*.whl")
    return wheel


def environment(python, version):
    """.compat/<version> with that MindSpore, made once. Returns its Python, or None if it did not install."""
    venv = COMPAT / version
    ready = venv / ".ready"
    if not ready.exists():
        if venv.exists():
            shutil.rmtree(venv)  # a half-made one
        run(python, "-m", "venv", venv)
        pip = [venv / "bin" / "python", "-m", "pip", "install", "-q"]
        if run(*pip, f"mindspore=={version}", *EXTRAS, check=False).returncode:
            return None
        ready.touch()
    return venv / "bin" / "python"


def installed_versions(venv_python, venv):
    """MindSpore's and NumPy's versions as imported, after checking that mindspore_offload and its _C come from
    the environment (not from the source tree)."""
    probe = ("import sys, mindspore, numpy, mindspore_offload, mindspore_offload._C as c; "
             "assert all(m.__file__.startswith(sys.argv[1]) for m in (mindspore_offload, c)), c.__file__; "
             "print(mindspore.__version__, numpy.__version__)")
    out = subprocess.run([venv_python, "-P", "-c", probe, str(venv.resolve())], cwd=ROOT, capture_output=True,
                         text=True)
    if out.returncode:
        log(out.stderr[-3000:])
        return None
    return out.stdout.split()


def compat_modules():
    """The test modules with a test marked `compat`: only these are collected, so a module that needs what the
    environments lack (hypothesis, scikit-learn, the lab build) or a newer MindSpore at import is not."""
    modules = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "tests").rglob("test_*.py")
                     if "pytest.mark.compat" in path.read_text())
    if not modules:
        raise SystemExit("no test is marked `compat`")
    return modules


def counts(junit):
    """(passed, failed, skipped, failing test ids) from pytest's JUnit XML."""
    passed = failed = skipped = 0
    failing = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome = {child.tag for child in case}
        if outcome & {"failure", "error"}:
            failed += 1
            failing.append(f"{case.get('classname')}::{case.get('name')}")
        elif "skipped" in outcome:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped, failing


def check(python, version, wheel):
    """One version: environment, install, the compat tests. Returns a row of the table."""
    row = dict(version=version, numpy="", result="", passed=0, failed=0, skipped=0, failing=[])
    start = time.monotonic()
    venv_python = environment(python, version)
    if venv_python is None:
        row["result"] = "does not install"
    else:
        venv = COMPAT / version
        run(venv_python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", wheel)
        versions = installed_versions(venv_python, venv)
        if versions is None:
            row["result"] = "does not import"
        else:
            assert versions[0] == version.partition(".post")[0] or versions[0] == version, versions
            row["numpy"] = versions[1]
            junit = venv / "junit.xml"
            junit.unlink(missing_ok=True)
            proc = run(venv_python, "-P", "-m", "pytest", "-m", "compat", "-q", "-p", "no:cacheprovider",
                       f"--junitxml={junit}", *compat_modules(), check=False)
            if junit.exists():
                row["passed"], row["failed"], row["skipped"], row["failing"] = counts(junit)
            ok = proc.returncode == 0 and row["failed"] == 0 and row["passed"] > 0
            row["result"] = "pass" if ok else f"FAIL (pytest exit {proc.returncode})"
    row["minutes"] = (time.monotonic() - start) / 60
    return row


def table(rows):
    lines = ["| MindSpore | NumPy | Result | Passed | Failed | Skipped | Minutes |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['version']} | {r['numpy']} | {r['result']} | {r['passed']} | {r['failed']} | "
                     f"{r['skipped']} | {r['minutes']:.1f} |")
    return "\n".join(lines)


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def commit():
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True)
    if head.returncode:
        return "unknown (not a git checkout)"
    return head.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")


def report(rows, python, started, tested, chosen):
    """The run's page: compat-<date>.md for every version pip lists, compat-<date>-<versions>.md for a choice."""
    today = datetime.date.today().isoformat()
    failures = [f"- {r['version']}: `{test}`" for r in rows for test in r["failing"]]
    text = "\n".join([
        f"# `make compat`, {today}",
        "",
        f"The tests marked `compat` (`pytest -m compat`: parity with `nn.AdamOffload` in GRAPH_MODE and PyNative,",
        "parameter groups, Nesterov, float16 parameters with float32 masters, checkpoints both ways; with",
        "`nn.AdamWeightDecay`: parity in both modes, fixed gradients in place and on the device path, checkpoints",
        "both ways, and `rounding=\"float32\"` against its formula) on each MindSpore release pip installs here,",
        "each in its own virtual environment, MindSpore's CPU backend.",
        "",
        f"- Host: {platform.system()} {platform.machine()}, {cpu_model()}, {os.cpu_count()} logical CPUs",
        f"- Python {platform.python_version()} ({python}); mindspore-offload at {tested}",
        f"- Command: `make compat` (`python .ci/compat.py`), {datetime.timedelta(seconds=round(time.time() - started))}"
        " in all",
        "",
        table(rows),
        "",
        "Failing tests:" if failures else "No test failed.",
        *failures,
        "",
    ])
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"compat-{today}-{'_'.join(r['version'] for r in rows)}" if chosen else f"compat-{today}"
    path = RESULTS / f"{name}.md"
    path.write_text(text)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="*", help="MindSpore versions (default: every one pip lists)")
    parser.add_argument("--python", default=sys.executable, help="the Python each environment is made from")
    args = parser.parse_args()
    started, tested = time.time(), commit()  # the tree the wheel and the tests come from, before any edit
    versions = args.versions or available_versions(args.python)
    log(f"MindSpore versions: {', '.join(versions)}")
    COMPAT.mkdir(exist_ok=True)
    wheel = build_wheel(args.python, COMPAT / "wheel")
    rows = []
    for version in versions:
        rows.append(check(args.python, version, wheel))
        log(f"{version}: {rows[-1]['result']}")
    print(table(rows))
    log(f"written to {report(rows, args.python, started, tested, bool(args.versions)).relative_to(ROOT)}")
    return 0 if all(r["result"] == "pass" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
