"""Determinism on the CPU: bitwise-identical results run to run (same thread count), for the forward and every
gradient, on both CPU paths; agreement within float rounding across thread counts. (CUDA repeatability is in
tests/test_cuda.py.)"""
import contextlib
from typing import Iterator, Tuple

import pytest
import torch

import conv_ext
from conv_ext.settings import im2col_gemm

PATHS = {"tiled": contextlib.nullcontext, "shared": im2col_gemm}
paths = pytest.mark.parametrize("path", list(PATHS))
# Batches at least as large as the thread count run samples in parallel with per-thread dw partial sums on the
# tiled path; a single sample runs its GEMMs multi-threaded instead.
CASES = {
    "batch8-groups": dict(shape=(8, 6, 17, 15), weight=(8, 3, 3, 3), stride=1, padding=1, dilation=1, groups=2),
    "batch1-strided": dict(shape=(1, 4, 40, 33), weight=(6, 4, 5, 3), stride=(2, 1), padding=2, dilation=(1, 2),
                           groups=1),
}
cases = pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))


def forward_backward(case: dict, dtype: torch.dtype = torch.float32) -> Tuple[torch.Tensor, ...]:
    """output, grad_input, grad_weight, grad_bias from fixed random data."""
    generator = torch.Generator().manual_seed(0)

    def randn(*shape: int) -> torch.Tensor:  # the same values in every dtype, up to its rounding
        return torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype)

    input = randn(*case["shape"]).requires_grad_()
    weight = randn(*case["weight"]).requires_grad_()
    bias = randn(case["weight"][0]).requires_grad_()
    output = conv_ext.conv2d(input, weight, bias, stride=case["stride"], padding=case["padding"],
                             dilation=case["dilation"], groups=case["groups"])
    grad_output = randn(*output.shape)
    return (output.detach(), *torch.autograd.grad(output, (input, weight, bias), grad_output))


@contextlib.contextmanager
def num_threads(count: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


NAMES = ("output", "grad_input", "grad_weight", "grad_bias")


@paths
@cases
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
def test_bitwise_repeatable_run_to_run(path, case, dtype):
    with PATHS[path]():
        first = forward_backward(case, dtype)
        second = forward_backward(case, dtype)
    for name, a, b in zip(NAMES, first, second):
        assert torch.equal(a, b), f"{name} differs between two identical runs"


@paths
@cases
def test_thread_counts_agree_within_rounding(path, case):
    """1 thread against 2 (restored afterwards). The sums may be grouped differently (per-thread dw partials,
    multi-threaded GEMMs), so only float rounding may differ: compared against the float32 rounding of the
    float64 result."""
    before = torch.get_num_threads()
    with PATHS[path]():
        with num_threads(1):
            one = forward_backward(case)
        with num_threads(2):
            two = forward_backward(case)
        exact = forward_backward(case, torch.float64)
    assert torch.get_num_threads() == before
    for name, a, b, e in zip(NAMES, one, two, exact):
        scale = e.abs().max().item()
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6 * scale, msg=lambda m: f"{name}: {m}")
        torch.testing.assert_close(a.double(), e, rtol=1e-4, atol=1e-5 * scale, msg=lambda m: f"{name}: {m}")
