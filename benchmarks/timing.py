"""Timing helpers: interleaved medians with torch.utils.benchmark, and the machine's own GEMM rate."""
import statistics
from typing import Callable, Dict, List

import torch
from torch.utils import benchmark


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def calibrated_timer(fn: Callable[[], object], device: str, target_seconds: float):
    """A Timer for fn and the call count that makes one measurement last about target_seconds."""
    fn()  # warm-up (first-call allocations, lazy initialisation)
    synchronize(device)
    # Timer runs on one thread unless told otherwise: measure on the threads torch is set to use.
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    estimate = timer.timeit(1).median
    number = max(1, int(target_seconds / max(estimate, 1e-7)))
    return timer, number


def interleaved_medians(fns: Dict[str, Callable[[], object]], device: str, rounds: int,
                        target_seconds: float) -> Dict[str, float]:
    """Median seconds per call of each fn, measured round-robin (A, B, C, A, B, C, ...) so that a noisy
    neighbour slows every implementation alike. torch.utils.benchmark synchronises CUDA around each block."""
    timers = {name: calibrated_timer(fn, device, target_seconds) for name, fn in fns.items()}
    samples: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, (timer, number) in timers.items():
            samples[name].append(timer.timeit(number).median)
    return {name: statistics.median(values) for name, values in samples.items()}


def gemm_flops_rate(device: str, size: int, rounds: int, target_seconds: float) -> float:
    """FLOP/s of one large float32 matrix product (torch.mm: MKL/OpenBLAS on CPU, cuBLAS on GPU): the limit of
    any im2col + GEMM design on the machine that runs it."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    out = torch.empty(size, size, device=device)
    seconds = interleaved_medians({"mm": lambda: torch.mm(a, b, out=out)}, device, rounds, target_seconds)["mm"]
    return 2 * size ** 3 / seconds
