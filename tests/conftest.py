import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def graph_mode(tmp_path, monkeypatch):
    """GRAPH_MODE for one test, run in its own folder: a failed compile writes rank_0/om/analyze_fail.ir
    to the working folder."""
    import mindspore as ms

    monkeypatch.chdir(tmp_path)
    mode = ms.get_context("mode")
    ms.set_context(mode=ms.GRAPH_MODE)
    yield
    ms.set_context(mode=mode)
