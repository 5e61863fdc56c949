"""The package's shape: no module imports another in a circle, and no function rebinds a module global
(state belongs to the object that owns it). Read from the source, so it needs nothing built."""
import ast

from support.paths import ROOT

PACKAGE = ROOT / "mindspore_offload"


def modules():
    return {f"mindspore_offload.{path.stem}" if path.stem != "__init__" else "mindspore_offload": path
            for path in PACKAGE.glob("*.py")}


def imports(path, known):
    """The package modules ``path`` imports, at any depth of the file (lazy imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mindspore_offload"):
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                found.add(target if target in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
    return found - {"mindspore_offload"}


def cycles(graph):
    found, done = [], set()

    def walk(node, path):
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in done:
                walk(nxt, path + [nxt])
        done.add(node)

    for start in sorted(graph):
        walk(start, [start])
    return found


def test_no_import_cycles():
    known = modules()
    graph = {name: imports(path, known) - {name} for name, path in known.items()}
    assert graph["mindspore_offload.optimizer"], "the import scan found nothing: is it reading the package?"
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]


def test_no_function_rebinds_a_module_global():
    offenders = [f"{path.name}:{node.lineno}" for path in PACKAGE.glob("*.py")
                 for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Global)]
    assert offenders == []
