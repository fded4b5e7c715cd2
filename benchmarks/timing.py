"""Timing helpers: interleaved medians with torch.utils.benchmark, and the machine's own GEMM rate."""
import statistics
from typing import Callable, Dict, List, Optional

import torch
from torch.utils import benchmark


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def calibrated_timer(fn: Callable[[], object], device: str, target_seconds: float,
                     num_threads: Optional[int] = None):
    """A Timer for fn on num_threads threads (default: those torch is set to use) and the call count that makes one
    measurement last about target_seconds."""
    # Timer runs on one thread unless told otherwise, and sets torch's thread count around each measurement.
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=num_threads or torch.get_num_threads())
    timer.timeit(1)  # warm-up (first-call allocations, lazy initialisation), on the same threads
    synchronize(device)
    estimate = timer.timeit(1).median
    number = max(1, int(target_seconds / max(estimate, 1e-7)))
    return timer, number


def interleaved_medians(fns: Dict[str, Callable[[], object]], device: str, rounds: int,
                        target_seconds: float, num_threads: Optional[Dict[str, int]] = None) -> Dict[str, float]:
    """Median seconds per call of each fn, measured round-robin (A, B, C, A, B, C, ...) so that a noisy
    neighbour slows every implementation alike. torch.utils.benchmark synchronises CUDA around each block.
    num_threads: the thread count of some fns (the others: torch's current one)."""
    num_threads = num_threads or {}
    timers = {name: calibrated_timer(fn, device, target_seconds, num_threads.get(name))
              for name, fn in fns.items()}
    samples: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, (timer, number) in timers.items():
            samples[name].append(timer.timeit(number).median)
    return {name: statistics.median(values) for name, values in samples.items()}


def gemm_flops_rate(device: str, size: int, rounds: int, target_seconds: float) -> float:
    """FLOP/s of one large float32 matrix product (torch.mm: MKL/OpenBLAS on CPU, cuBLAS on GPU): the limit of
    any im2col + GEMM design on this machine."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    out = torch.empty(size, size, device=device)
    seconds = interleaved_medians({"mm": lambda: torch.mm(a, b, out=out)}, device, rounds, target_seconds)["mm"]
    return 2 * size ** 3 / seconds
