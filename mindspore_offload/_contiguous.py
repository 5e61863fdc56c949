"""Give every Parameter the host op writes in place storage of its own, in one piece.

The custom op receives a raw pointer and writes through it. For a Parameter whose data is a view
(a transpose, a column block from ops.split), MindSpore's jit pipeline hands the op a temporary
contiguous copy and never copies it back, so the write would be lost without a word; docs/design.md
("Parameters that are views") has what MindSpore passes in each mode. Whole-graph GRAPH_MODE already
swaps such a Parameter's data for a contiguous copy before running; this does the same, earlier and
in every mode, so the update lands. The Parameter object, its name and its values are kept; it stops
sharing memory with the tensor it was a view of, as it does under GRAPH_MODE.
"""


def make_contiguous(parameters):
    """Replace the data of each non-contiguous Parameter by a contiguous copy; return their names."""
    fixed = []
    for param in parameters:
        if not param.is_contiguous():
            param.set_data(param.contiguous())
            fixed.append(param.name)
    return fixed


class CompileGuard:
    """Runs make_contiguous once per pass of the custom op's shape inference.

    Shape inference runs in Python whenever a graph holding the optimizer is compiled (a cell in
    GRAPH_MODE, a @ms.jit function, the optimizer's own jit construct in PyNative), after the user's
    last set_data and before any state changes. It runs once per op call in the graph (once per
    trained parameter), so only every `calls_per_pass`-th run looks at them all: the cost at compile
    stays linear in the parameter count.
    """

    def __init__(self, parameters, calls_per_pass):
        self.parameters = tuple(parameters)
        self.calls_per_pass = max(1, calls_per_pass)
        self.calls = 0

    def __call__(self):
        if self.calls % self.calls_per_pass == 0:
            make_contiguous(self.parameters)
        self.calls += 1


class StorageWatch:
    """Tells when any of these Parameters has been given new storage since the last look.

    In PYNATIVE_MODE a compiled step keeps the storage its Parameters had when it was compiled. A later
    ``set_data`` (which ``load_param_into_net`` and ``load_checkpoint`` call too) gives the Parameter new
    storage, and MindSpore 2.10 keeps running the step on the old one: every update from then on is lost
    without a word, for nn.Adam as for us. The optimizer asks before each PyNative call and compiles its
    step again when the answer is yes. One ``data_ptr()`` a Parameter a call (about 0.4 us each).
    """

    def __init__(self, parameters):
        self.parameters = tuple(parameters)
        self.seen = None

    def moved(self):
        now = tuple(param.data_ptr() for param in self.parameters)
        moved = self.seen is not None and now != self.seen
        self.seen = now
        return moved
