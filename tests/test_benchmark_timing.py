"""The benchmark's timer measures on the threads torch is set to use (torch.utils.benchmark.Timer alone runs on
one thread), so the thread count the report prints is the one its figures were measured with."""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the benchmarks package beside tests/
from benchmarks.timing import interleaved_medians  # noqa: E402


def test_timed_calls_run_on_torchs_thread_count():
    before = torch.get_num_threads()
    seen = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            seen.clear()
            medians = interleaved_medians({"probe": lambda: seen.append(torch.get_num_threads())}, "cpu",
                                          rounds=2, target_seconds=0.001)
            assert medians["probe"] > 0
            assert seen and set(seen) == {threads}
    finally:
        torch.set_num_threads(before)
