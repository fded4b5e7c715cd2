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


def test_fns_given_a_thread_count_run_on_it_beside_the_others():
    """The networks' batch-1 scaling interleaves the same layer on 1 thread and on all of them."""
    before = torch.get_num_threads()
    seen = {"one": set(), "two": set()}
    try:
        torch.set_num_threads(2)
        interleaved_medians({name: (lambda name=name: seen[name].add(torch.get_num_threads())) for name in seen},
                            "cpu", rounds=2, target_seconds=0.001, num_threads={"one": 1})
        assert seen == {"one": {1}, "two": {2}}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_without_warm_up_each_a_long_call_runs_once_per_round():
    """Timer's warm-up calls come before each of its measurements; the plain measurement makes none (a warm-up and
    an estimate, then one call a round where one call outlasts the target)."""
    calls = {"timer": 0, "plain": 0}

    def probe(name):
        def call():
            calls[name] += 1
        return call
    interleaved_medians({"timer": probe("timer")}, "cpu", rounds=3, target_seconds=0.0)
    interleaved_medians({"plain": probe("plain")}, "cpu", rounds=3, target_seconds=0.0, warm_up_each=False)
    assert calls["plain"] == 2 + 3
    assert calls["timer"] > calls["plain"]
