"""Running the same pass at every instruction-set level and thread count, for the tests that compare bits
across them (with the `lab` fixture of tests/conftest.py)."""
from mindspore_offload import kernel


def every_level_and_thread_count(lab, threads=(1, 3)):
    """Yields (level, thread count) for each level this CPU runs and each count in `threads`, with the
    kernel set to them and the lab's grain at 64 elements, so that small arrays are split over the threads
    too."""
    for isa in kernel.available_isas():
        for n in threads:
            kernel.set_isa(isa)
            kernel.set_num_threads(n)
            lab.set_tuning(64, 1 << 40)
            yield isa, n
