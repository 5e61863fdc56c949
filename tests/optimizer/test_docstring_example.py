"""The Examples block of AdamOffload's docstring runs as written and prints what it shows."""
import doctest

import pytest

pytest.importorskip("mindspore")

from mindspore_offload import optimizer  # noqa: E402


def test_adam_offload_docstring_example_runs(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # anything the graph compiler writes stays out of the repository
    finder = doctest.DocTestFinder(recurse=False)
    (test,) = finder.find(optimizer.AdamOffload, "AdamOffload", globs={})
    assert len(test.examples) > 10, "the Examples block was not found"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    result = runner.run(test)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed (output above)"


def test_adam_weight_decay_offload_docstring_example_runs(monkeypatch, tmp_path):
    from mindspore_offload import adamw

    monkeypatch.chdir(tmp_path)
    finder = doctest.DocTestFinder(recurse=False)
    (test,) = finder.find(adamw.AdamWeightDecayOffload, "AdamWeightDecayOffload", globs={})
    assert len(test.examples) > 8, "the Examples block was not found"
    result = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS).run(test)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed (output above)"
