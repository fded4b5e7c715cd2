"""The column workspace: processed in pieces under a bound, with identical results whatever the bound.

Both CPU paths are checked: the fast tiled path (tiles of output rows per thread) and the shared orchestration
that CUDA uses (chunks of the batch), run here with the host-launched device bodies."""
import contextlib
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

import conv_ext
from conv_cases import GRID, case_kwargs, forward_and_grads, make_tensors
from conv_ext import settings
from conv_ext.settings import im2col_gemm

CASE = next(c for c in GRID if c.name == "batch33")
PATHS = {"tiled": contextlib.nullcontext, "shared": im2col_gemm}
paths = pytest.mark.parametrize("path", list(PATHS))


def column_bytes_per_sample(input: torch.Tensor, weight: torch.Tensor, output: torch.Tensor) -> int:
    return input.shape[1] * weight.shape[2] * weight.shape[3] * output.shape[2] * output.shape[3] * input.element_size()


# Bounds in output rows of CASE's columns (float64, two buffers in backward): 1 row; 3 rows per thread on 2
# threads (tiles of 3, 3 and a shorter last one); 2 samples.
ROW_BYTES = 2 * 2 * 9 * 6 * 8


@paths
@pytest.mark.parametrize("limit", [1, 6 * ROW_BYTES, 2 * 7 * ROW_BYTES], ids=["minimal", "3-rows", "2-samples"])
def test_chunked_equals_unchunked(path, limit):
    input, weight, bias = make_tensors(CASE, torch.float64, True)
    with PATHS[path]():
        with conv_ext.workspace_limit(1 << 30):
            whole, whole_grads, grad_output = forward_and_grads(conv_ext.conv2d, input, weight, bias, None,
                                                                **case_kwargs(CASE))
        with conv_ext.workspace_limit(limit):
            pieces, pieces_grads, _ = forward_and_grads(conv_ext.conv2d, input, weight, bias, grad_output,
                                                        **case_kwargs(CASE))
    torch.testing.assert_close(pieces, whole, rtol=1e-13, atol=1e-13)
    for got, want in zip(pieces_grads, whole_grads):
        torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-13)


# Stride 2: float32 runs the tiled path with columns (stride 1 with Wo == W runs the implicit GEMM, no columns).
STRIDED = replace(CASE, name="batch33-stride2", stride=2)


@paths
def test_peak_workspace_stays_under_the_bound(path):
    input, weight, bias = make_tensors(STRIDED, torch.float32, True)
    output = conv_ext.conv2d(input, weight, bias, **case_kwargs(STRIDED))
    per_sample = column_bytes_per_sample(input, weight, output)
    limit = 5 * per_sample
    with PATHS[path](), conv_ext.workspace_limit(limit):
        conv_ext.reset_peak_workspace_bytes()
        conv_ext.conv2d(input, weight, bias, **case_kwargs(STRIDED)).sum().backward()
        peak = conv_ext.peak_workspace_bytes()
    assert 0 < peak <= limit


def test_implicit_gemm_needs_no_columns():
    """float32, stride 1, Wo == W: with our SIMD kernels (where the CPU has AVX-512 or AVX2) forward and backward
    allocate no column workspace at all; without them (simd_isa("none")) the tiled path allocates its tiles."""
    input, weight, bias = make_tensors(CASE, torch.float32, True)
    for isa in {settings.current_simd_isa(), "none"}:
        with settings.simd_isa(isa):
            conv_ext.reset_peak_workspace_bytes()
            conv_ext.conv2d(input, weight, bias, **case_kwargs(CASE)).sum().backward()
            peak = conv_ext.peak_workspace_bytes()
        assert (peak == 0) == (isa != "none"), (isa, peak)


def test_shared_orchestration_chunks_are_as_large_as_the_bound_allows():
    input, weight, bias = make_tensors(CASE, torch.float32, True)
    output = conv_ext.conv2d(input, weight, bias, **case_kwargs(CASE))
    per_sample = column_bytes_per_sample(input, weight, output)
    with im2col_gemm():
        with conv_ext.workspace_limit(5 * per_sample):  # 5 samples in forward, 2 x 2 column buffers in backward
            conv_ext.reset_peak_workspace_bytes()
            conv_ext.conv2d(input, weight, bias, **case_kwargs(CASE))
            assert conv_ext.peak_workspace_bytes() == 5 * per_sample
        with conv_ext.workspace_limit(1 << 30):
            conv_ext.reset_peak_workspace_bytes()
            conv_ext.conv2d(input, weight, bias, **case_kwargs(CASE))
            assert conv_ext.peak_workspace_bytes() == per_sample * input.shape[0]


@paths
def test_columns_many_times_the_bound_still_run(path):
    """One sample whose columns are 17x the bound: the tiled path cuts it into single output rows (its
    minimum piece), the shared orchestration runs it as a chunk of one sample (its minimum piece)."""
    torch.manual_seed(0)
    input = torch.randn(3, 8, 48, 40, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(4, 8, 3, 3, dtype=torch.float64, requires_grad=True)
    limit = 64 << 10
    assert column_bytes_per_sample(input, weight, input[:, :4]) > 16 * limit
    with PATHS[path](), conv_ext.workspace_limit(limit):
        conv_ext.reset_peak_workspace_bytes()
        output, grads, grad_output = forward_and_grads(conv_ext.conv2d, input, weight, None, None, padding=1)
        peak = conv_ext.peak_workspace_bytes()
    expected, expected_grads, _ = forward_and_grads(F.conv2d, input, weight, None, grad_output, padding=1)
    torch.testing.assert_close(output, expected)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want)
    if path == "tiled":
        assert peak <= limit


def test_workspace_limit_context_restores_the_setting():
    before = conv_ext.workspace_limit_bytes()
    assert before == 64 << 20
    with conv_ext.workspace_limit(12345):
        assert conv_ext.workspace_limit_bytes() == 12345
    assert conv_ext.workspace_limit_bytes() == before


def test_seed_second_layer_with_the_default_bound():
    """The seed's 16->32 k5 layer at 14x14: at the default bound its backward tiles are 11 + 3 output rows."""
    torch.manual_seed(0)
    input = torch.randn(4, 16, 14, 14, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(32, 16, 5, 5, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(32, dtype=torch.float64, requires_grad=True)
    output, grads, grad_output = forward_and_grads(conv_ext.conv2d, input, weight, bias, None, padding=2)
    expected, expected_grads, _ = forward_and_grads(F.conv2d, input, weight, bias, grad_output, padding=2)
    torch.testing.assert_close(output, expected)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want)
