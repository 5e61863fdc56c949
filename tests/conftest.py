import pytest


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


@pytest.fixture(autouse=True)
def restore_kernel_settings():
    """Every test leaves the kernel's level and thread count as it found them (many force both)."""
    from mindspore_offload import kernel

    isa, threads = kernel.active_isa(), kernel.get_num_threads()
    yield
    kernel.set_isa(isa)
    kernel.set_num_threads(threads)


@pytest.fixture
def lab(monkeypatch):
    """kernel.* running on the lab build (mindspore_offload._bench: the same kernel sources, plus size
    thresholds that can be set), so that small arrays can be split over threads and written with
    streaming stores. test_lab_build_gives_the_bits_of_the_shipped_one ties the two builds together."""
    bench = pytest.importorskip("mindspore_offload._bench",
                                reason="the lab build is made by `make test` or MINDSPORE_OFFLOAD_BENCH=1")
    saved = bench.get_tuning(), bench.active_isa(), bench.get_num_threads()
    from mindspore_offload import kernel

    monkeypatch.setattr(kernel, "_C", bench)
    yield bench
    bench.set_tuning(**saved[0])
    bench.set_isa(saved[1])
    bench.set_num_threads(saved[2])
