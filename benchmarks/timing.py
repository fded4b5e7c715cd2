"""Timing helpers: interleaved medians with torch.utils.benchmark, and the machine's own GEMM rate."""
import gc
import statistics
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch.utils import benchmark


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


# The thread count that the last plain measurement ran on (a measurement after a change calls fn once untimed).
_threads_of_last_run: Optional[int] = None


def _plain_seconds_per_call(fn: Callable[[], object], number: int, device: str, num_threads: int) -> float:
    """Seconds per call of `number` calls of fn on num_threads threads, the garbage collector off (as Timer's),
    without the warm-up calls Timer makes before each measurement; but after a change of the thread count, one
    untimed call: the first parallel region on a new count resizes OpenMP's team of threads, which would otherwise
    fall on whichever implementation the interleaved rounds run first after the change (a 0.2 ms layer's
    2-thread time read as its 1-thread time)."""
    global _threads_of_last_run
    previous, collecting = torch.get_num_threads(), gc.isenabled()
    torch.set_num_threads(num_threads)
    gc.disable()
    try:
        if num_threads != _threads_of_last_run:
            fn()
            _threads_of_last_run = num_threads
        synchronize(device)
        start = time.perf_counter()
        for _ in range(number):
            fn()
        synchronize(device)
        return (time.perf_counter() - start) / number
    finally:
        if collecting:
            gc.enable()
        torch.set_num_threads(previous)


def calibrated_timer(fn: Callable[[], object], device: str, target_seconds: float,
                     num_threads: Optional[int] = None,
                     warm_up_each: bool = True) -> Tuple[Callable[[int], float], int]:
    """A measurement of fn (call count -> seconds per call) on num_threads threads (default: those torch is set to
    use) and the call count that makes one measurement last about target_seconds. warm_up_each: through
    torch.utils.benchmark.Timer, which warms up with two calls or more before each measurement (and, unless told,
    would run on one thread); else plainly."""
    threads = num_threads or torch.get_num_threads()
    _plain_seconds_per_call(fn, 1, device, threads)  # warm-up (first-call allocations, lazy initialisation)
    if warm_up_each:
        timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)

        def measure(number: int) -> float:
            return timer.timeit(number).median
    else:
        def measure(number: int) -> float:
            return _plain_seconds_per_call(fn, number, device, threads)
    estimate = measure(1)
    return measure, max(1, int(target_seconds / max(estimate, 1e-7)))


def interleaved_medians(fns: Dict[str, Callable[[], object]], device: str, rounds: int,
                        target_seconds: float, num_threads: Optional[Dict[str, int]] = None,
                        warm_up_each: bool = True) -> Dict[str, float]:
    """Median seconds per call of each fn, measured round-robin (A, B, C, A, B, C, ...) so that a noisy
    neighbour slows every implementation alike; CUDA is synchronised around each measurement.
    num_threads: the thread count of some fns (the others: torch's current one). warm_up_each=False measures
    without Timer's warm-up calls: a fn that takes one call per measurement then runs once per round instead of
    three times (the networks benchmark times thousands of layers)."""
    num_threads = num_threads or {}
    timers = {name: calibrated_timer(fn, device, target_seconds, num_threads.get(name), warm_up_each)
              for name, fn in fns.items()}
    samples: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, (measure, number) in timers.items():
            samples[name].append(measure(number))
    return {name: statistics.median(values) for name, values in samples.items()}


def gemm_flops_rate(device: str, size: int, rounds: int, target_seconds: float) -> float:
    """FLOP/s of one large float32 matrix product (torch.mm: MKL/OpenBLAS on CPU, cuBLAS on GPU): the limit of
    any im2col + GEMM design on the machine that runs it."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    out = torch.empty(size, size, device=device)
    seconds = interleaved_medians({"mm": lambda: torch.mm(a, b, out=out)}, device, rounds, target_seconds)["mm"]
    return 2 * size ** 3 / seconds
