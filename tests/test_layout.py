"""The shape of tests/: test modules sit in the folders that mirror the package, helpers in support/,
msrun and subprocess scripts in workers/; no file here imports a test module or a worker (helpers come
from support/), and none edits sys.path (pyproject.toml's pythonpath puts tests/ there). Read from the
source."""
import ast

from support.paths import TESTS, WORKERS

FOLDERS = ("kernel", "entry_points", "optimizer", "masters", "distributed", "checkpoint", "packaging")
WORKER_NAMES = {path.stem for path in WORKERS.glob("*.py")}


def imported(source):
    """Every module path a source imports, at any depth (a lazy import counts); for ``from X import a``
    both ``X`` and ``X.a``, since ``a`` may be a module. Relative imports keep their leading dots."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            found.add(base)
            found.update(base + ("" if base.endswith(".") else ".") + alias.name for alias in node.names)
    return found


def forbidden_imports(source):
    """The imports of a test module, a worker or conftest.py among them."""
    def bad(module):
        parts = [part for part in module.split(".") if part]
        return any(part.startswith("test_") or part in WORKER_NAMES | {"workers", "conftest"} for part in parts)

    return sorted(module for module in imported(source) if bad(module))


def edits_sys_path(source):
    """Whether a source changes sys.path: calls a method on it, or assigns to it."""
    def is_sys_path(node):
        return (isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
                and node.value.id == "sys")

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and is_sys_path(node.value):
            return True
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(is_sys_path(target) or isinstance(target, ast.Subscript) and is_sys_path(target.value)
               for target in targets):
            return True
    return False


def sources():
    return sorted(TESTS.rglob("*.py"))


def test_test_modules_sit_in_the_package_folders():
    misplaced = [str(path.relative_to(TESTS)) for path in TESTS.rglob("test_*.py")
                 if path.parent.name not in FOLDERS and path != TESTS / "test_layout.py"]
    assert misplaced == []
    assert all(list((TESTS / folder).glob("test_*.py")) for folder in FOLDERS)
    assert not list((TESTS / "support").glob("test_*.py")) and not list(WORKERS.glob("test_*.py"))


def test_no_file_imports_a_test_module_or_a_worker():
    assert len(sources()) > 40 and WORKER_NAMES, "the scan found too little: is it reading tests/?"
    offenders = {str(path.relative_to(TESTS)): forbidden_imports(path.read_text()) for path in sources()}
    assert {path: found for path, found in offenders.items() if found} == {}


def test_no_file_edits_sys_path():
    assert [str(path.relative_to(TESTS)) for path in sources() if edits_sys_path(path.read_text())] == []


def test_the_checks_find_what_they_look_for():
    worker = sorted(WORKER_NAMES)[0]
    for source in ["import test_kernel", "from test_entry import call", "from . import test_kernel",
                   "from .test_kernel import SIZES", "from tests.kernel import test_kernel",
                   f"import {worker}", f"from {worker} import Run", "from workers import x",
                   "import conftest", "def f():\n    import test_kernel"]:
        assert forbidden_imports(source), source
    for source in ["from support.entry_points import call", "from support import masters", "import os",
                   "from mindspore_offload import kernel", "from . import support"]:
        assert forbidden_imports(source) == [], source
    for source in ["import sys\nsys.path.insert(0, 'x')", "sys.path.append('x')", "sys.path = []",
                   "sys.path[0] = 'x'", "sys.path += ['x']"]:
        assert edits_sys_path(source), source
    for source in ["import sys\nprint(sys.argv)", "import os\nos.path.join('a')", "paths = sys.paths"]:
        assert not edits_sys_path(source), source
