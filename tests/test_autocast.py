"""Autocast: conv_ext.conv2d follows F.conv2d's policy (a lower-precision op: its floating-point inputs, except
float64, are cast to the autocast dtype, and the convolution runs in it). The op's AutocastCPU/AutocastCUDA
kernels live in conv_ext/ops.py."""
from typing import Callable, Sequence, Tuple

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import conv_ext

# bfloat16 keeps 8 bits of mantissa: sums of 27-36 products of unit normals are exact to about 2^-8 relative.
BF16 = dict(rtol=2e-2, atol=6e-2)
FP16 = dict(rtol=5e-3, atol=1e-2)
KWARGS = dict(stride=(2, 1), padding=1, dilation=(1, 2), groups=2)


def make_inputs(dtype: torch.dtype = torch.float32, device: str = "cpu", seed: int = 0
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator).to(device=device, dtype=dtype).requires_grad_()

    return randn(3, 4, 9, 10), randn(6, 2, 3, 3), randn(6)


def run_under_autocast(conv: Callable, leaves: Sequence[torch.Tensor], device: str, dtype: torch.dtype
                       ) -> Tuple[torch.Tensor, Tuple[torch.Tensor, ...]]:
    """The output under autocast and the gradients of the leaves (backward outside the region, as usual)."""
    with torch.autocast(device, dtype=dtype):
        output = conv(*leaves, **KWARGS)
    grad_output = torch.randn(output.shape, generator=torch.Generator().manual_seed(1)).to(output)
    return output, torch.autograd.grad(output, leaves, grad_output)


@pytest.mark.parametrize("dtype,tolerance", [(torch.bfloat16, BF16), (torch.float16, FP16)], ids=["bf16", "f16"])
def test_cpu_autocast_follows_f_conv2d(dtype, tolerance):
    leaves = make_inputs()
    output, grads = run_under_autocast(conv_ext.conv2d, leaves, "cpu", dtype)
    expected, expected_grads = run_under_autocast(F.conv2d, leaves, "cpu", dtype)
    assert output.dtype == expected.dtype == dtype
    assert [g.dtype for g in grads] == [g.dtype for g in expected_grads] == [torch.float32] * 3
    torch.testing.assert_close(output, expected, **tolerance)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, **tolerance)


def test_cpu_autocast_computes_in_the_autocast_dtype():
    """Bitwise the op on the inputs cast to bfloat16 by hand: the work itself runs in bfloat16."""
    input, weight, bias = make_inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = conv_ext.conv2d(input, weight, bias, **KWARGS)
    by_hand = conv_ext.conv2d(input.bfloat16(), weight.bfloat16(), bias.bfloat16(), **KWARGS)
    assert torch.equal(output, by_hand)


def test_float64_is_not_cast():
    """As in F.conv2d, float64 tensors are left alone by autocast."""
    leaves = make_inputs(torch.float64)
    output, grads = run_under_autocast(conv_ext.conv2d, leaves, "cpu", torch.bfloat16)
    expected, expected_grads = run_under_autocast(F.conv2d, leaves, "cpu", torch.bfloat16)
    assert output.dtype == expected.dtype == torch.float64
    torch.testing.assert_close(output, expected)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want)


def test_autocast_disabled_inside_a_region():
    input, weight, bias = make_inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with torch.autocast("cpu", enabled=False):
            output = conv_ext.conv2d(input, weight, bias, **KWARGS)
    assert output.dtype == torch.float32
    torch.testing.assert_close(output, F.conv2d(input, weight, bias, **KWARGS))


def test_already_lower_precision_inputs_stay_as_they_are():
    input, weight, bias = (t.detach().bfloat16() for t in make_inputs())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = conv_ext.conv2d(input, weight, bias, **KWARGS)
    assert output.dtype == torch.bfloat16
    assert torch.equal(output, conv_ext.conv2d(input, weight, bias, **KWARGS))


def test_module_training_step_under_autocast():
    """conv_ext.Conv2d in a float32 model under bfloat16 autocast: parameter grads stay float32 and match the
    same model built with nn.Conv2d."""
    def model(conv_type: type) -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(conv_type(4, 8, 3, padding=1), nn.ReLU(), conv_type(8, 4, 3, stride=2, groups=2))

    ours, theirs = model(conv_ext.Conv2d), model(nn.Conv2d)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 4, 10, 10, generator=torch.Generator().manual_seed(2))
    for net in (ours, theirs):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = net(x)
        assert output.dtype == torch.bfloat16
        output.float().pow(2).mean().backward()
    for p, q in zip(ours.parameters(), theirs.parameters()):
        assert p.grad.dtype == torch.float32
        torch.testing.assert_close(p.grad, q.grad, **BF16)


def test_conv2d_function_under_autocast():
    """Conv2dFunction saves the tensors it is given; its backward runs in the dtype the forward used, so it
    gives exactly what conv_ext.conv2d gives under autocast (and what F.conv2d gives, within bfloat16)."""
    leaves = make_inputs()

    def function(input, weight, bias, stride, padding, dilation, groups):
        return conv_ext.Conv2dFunction.apply(input, weight, bias, stride, (1, 1), (1, 2), groups)

    output, grads = run_under_autocast(function, leaves, "cpu", torch.bfloat16)
    expected, expected_grads = run_under_autocast(conv_ext.conv2d, leaves, "cpu", torch.bfloat16)
    reference, reference_grads = run_under_autocast(F.conv2d, leaves, "cpu", torch.bfloat16)
    assert output.dtype == torch.bfloat16 and [g.dtype for g in grads] == [torch.float32] * 3
    assert torch.equal(output, expected)
    for got, want, ref in zip(grads, expected_grads, reference_grads):
        assert torch.equal(got, want)
        torch.testing.assert_close(got, ref, **BF16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA autocast needs a CUDA GPU")
@pytest.mark.skipif(not conv_ext.cuda_built(), reason="this build of conv_ext has no CUDA kernels")
def test_cuda_float16_autocast_follows_f_conv2d():
    leaves = make_inputs(device="cuda")
    output, grads = run_under_autocast(conv_ext.conv2d, leaves, "cuda", torch.float16)
    expected, expected_grads = run_under_autocast(F.conv2d, leaves, "cuda", torch.float16)
    assert output.dtype == expected.dtype == torch.float16
    assert [g.dtype for g in grads] == [torch.float32] * 3
    torch.testing.assert_close(output, expected, **FP16)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, **FP16)
