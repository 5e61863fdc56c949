"""examples/lenet5.py loaded as the module ``lenet5``, for the tests that call into it."""
import importlib.util
import sys

from support.paths import ROOT

EXAMPLE = ROOT / "examples" / "lenet5.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("lenet5", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    # GRAPH_MODE compiles LeNet5.construct by finding its module by name.
    sys.modules["lenet5"] = module
    spec.loader.exec_module(module)
    return module


lenet5 = _load_example()
