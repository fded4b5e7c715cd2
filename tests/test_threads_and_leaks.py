"""The op called from several Python threads at once gives the serial results; thousands of calls keep the
process's resident memory flat."""
import contextlib
import gc
import os
import threading
from typing import List, Tuple

import pytest
import torch

import conv_ext
from conv_ext.settings import im2col_gemm

PATHS = {"tiled": contextlib.nullcontext, "shared": im2col_gemm}
paths = pytest.mark.parametrize("path", list(PATHS))

THREADS = 4
CALLS_PER_THREAD = 3


def problem(i: int) -> Tuple[Tuple[int, ...], Tuple[int, ...], int, int, int, int]:
    """Problem i: (input shape, weight shape, stride, padding, dilation, groups), different for every i."""
    groups = 1 + i % 2
    in_channels = groups * (1 + i % 3)
    input_shape = (1 + (i % 3) * 2, in_channels, 7 + i, 9 - i % 4)
    weight_shape = (2 * groups, in_channels // groups, 1 + i % 3, 2 + i % 2)
    return input_shape, weight_shape, 1 + i % 2, i % 3, 1 + (i % 4 == 3), groups


PROBLEMS = [problem(i) for i in range(THREADS * CALLS_PER_THREAD)]


def forward_backward(problem_index: int) -> Tuple[torch.Tensor, ...]:
    """output, grad_input, grad_weight, grad_bias of problem `problem_index`, from data seeded by the index."""
    input_shape, weight_shape, stride, padding, dilation, groups = PROBLEMS[problem_index]
    generator = torch.Generator().manual_seed(problem_index)
    input = torch.randn(input_shape, generator=generator).requires_grad_()
    weight = torch.randn(weight_shape, generator=generator).requires_grad_()
    bias = torch.randn(weight_shape[0], generator=generator).requires_grad_()
    output = conv_ext.conv2d(input, weight, bias, stride, padding, dilation, groups)
    grad_output = torch.randn(output.shape, generator=generator)
    return (output.detach(), *torch.autograd.grad(output, (input, weight, bias), grad_output))


@paths
def test_concurrent_calls_match_serial_results(path):
    with PATHS[path]():  # a process-wide switch: set once, before the threads start
        serial = [forward_backward(i) for i in range(len(PROBLEMS))]
        concurrent: List[Tuple[torch.Tensor, ...]] = [()] * len(PROBLEMS)
        errors: List[BaseException] = []
        start = threading.Barrier(THREADS, timeout=120)  # a guard against a hang, not a timing check

        def worker(thread: int) -> None:
            try:
                start.wait()
                for call in range(CALLS_PER_THREAD):
                    index = thread * CALLS_PER_THREAD + call
                    concurrent[index] = forward_backward(index)
            except BaseException as error:  # reported by the main thread
                errors.append(error)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    for index, (want, got) in enumerate(zip(serial, concurrent)):
        for name, a, b in zip(("output", "grad_input", "grad_weight", "grad_bias"), want, got):
            assert torch.equal(a, b), f"problem {index} {PROBLEMS[index]}: {name} differs from the serial run"


def resident_bytes() -> int:
    """The process's resident set size, from /proc/self/statm (pages)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@paths
def test_many_calls_keep_resident_memory_flat(path):
    """2,000 forward + backward calls of a small convolution grow the resident memory by less than 8 MiB: a
    tensor leaked per call, even one the size of the weight (4.6 KB), would add more than 9 MB. Run on one
    thread: this measures memory, and a busy machine would otherwise make the 2,000 calls slow."""
    generator = torch.Generator().manual_seed(0)
    input = torch.randn(4, 8, 16, 16, generator=generator, requires_grad=True)
    weight = torch.randn(16, 8, 3, 3, generator=generator, requires_grad=True)
    bias = torch.randn(16, generator=generator, requires_grad=True)

    def step() -> None:
        output = conv_ext.conv2d(input, weight, bias, padding=1)
        torch.autograd.grad(output.sum(), (input, weight, bias))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with PATHS[path]():
            for _ in range(200):  # warm up: allocator pools, lazy initialisation
                step()
            gc.collect()
            before = resident_bytes()
            for _ in range(2000):
                step()
            gc.collect()
            growth = resident_bytes() - before
    finally:
        torch.set_num_threads(threads)
    assert growth < 8 * 2**20, f"resident memory grew by {growth / 2**20:.1f} MiB over 2,000 calls"
