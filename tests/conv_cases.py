"""The shared grid of convolution configurations and the comparison with torch.nn.functional.conv2d, used by
every test that checks an implementation (the ext op, its im2col + GEMM path, the unfold reference, CUDA)."""
from dataclasses import dataclass, replace
from typing import Callable, Optional, Tuple, Union

import functools

import pytest
import torch
import torch.nn.functional as F

from conv_ext import settings

Pair = Union[int, Tuple[int, int]]


@dataclass(frozen=True)
class ConvCase:
    name: str
    batch: int = 2
    in_channels: int = 4
    out_channels: int = 6
    size: Tuple[int, int] = (9, 10)
    kernel: Pair = 3
    stride: Pair = 1
    padding: Union[str, Pair] = 0
    dilation: Pair = 1
    groups: int = 1

    def kernel_pair(self) -> Tuple[int, int]:
        return (self.kernel, self.kernel) if isinstance(self.kernel, int) else self.kernel


BASE = ConvCase("base")

# The instruction sets of our float32 SIMD kernels that this CPU offers, best first: each is tested (an AVX-512 CPU
# runs the AVX2 kernels too), and "none" (no SIMD kernel: the tiled path on ATen's GEMM) everywhere.
SIMD_ISAS = {"avx512": ["avx512", "avx2"], "avx2": ["avx2"], "none": []}[settings.cpu_simd_isa()]
CPU_BACKENDS = {isa: functools.partial(settings.simd_isa, isa) for isa in ["none"] + SIMD_ISAS}
GRID = [
    BASE,
    replace(BASE, name="k1x1", kernel=1),
    replace(BASE, name="k5x5", kernel=5, padding=2),
    replace(BASE, name="k2x3", kernel=(2, 3)),
    replace(BASE, name="k3x5", kernel=(3, 5), padding=(1, 2)),
    replace(BASE, name="stride2", stride=2, padding=1),
    replace(BASE, name="stride3", stride=3),
    replace(BASE, name="stride-pair", stride=(1, 2), padding=1),
    replace(BASE, name="stride>kernel", kernel=2, stride=3),
    replace(BASE, name="k1-stride2", kernel=1, stride=2),
    replace(BASE, name="pad1", padding=1),
    replace(BASE, name="pad>=kernel", padding=3),
    replace(BASE, name="pad-pair", kernel=(2, 3), padding=(2, 0)),
    replace(BASE, name="dilation2", dilation=2, padding=2),
    replace(BASE, name="dilation2x3", dilation=(2, 3), padding=1),
    replace(BASE, name="dilated-strided", kernel=(3, 2), dilation=2, stride=2, padding=(1, 3)),
    replace(BASE, name="groups2", groups=2, padding=1),
    replace(BASE, name="depthwise", in_channels=4, out_channels=4, groups=4, padding=1),
    replace(BASE, name="depthwise-x2", in_channels=4, out_channels=8, groups=4, kernel=(3, 5), stride=2),
    replace(BASE, name="same", padding="same", kernel=(2, 3), dilation=(1, 2)),
    replace(BASE, name="valid", padding="valid", kernel=5),
    replace(BASE, name="batch0", batch=0, padding=1),
    replace(BASE, name="batch1", batch=1, stride=2),
    replace(BASE, name="batch33", batch=33, in_channels=2, out_channels=3, size=(7, 6), padding=1),
    replace(BASE, name="kernel=input", size=(5, 5), kernel=5),
    replace(BASE, name="tiny-1x1-input", size=(1, 1), kernel=1, padding=1),
]
GRID_IDS = [c.name for c in GRID]

TOLERANCES = {torch.float64: dict(rtol=1e-10, atol=1e-10), torch.float32: dict(rtol=1e-4, atol=1e-4)}


def make_tensors(case: ConvCase, dtype: torch.dtype, bias: bool, device: str = "cpu", seed: int = 0):
    """input, weight, bias (or None), created from a fixed seed, requiring grad."""
    generator = torch.Generator().manual_seed(seed)
    kh, kw = case.kernel_pair()

    def randn(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype=dtype, device=device)

    input = randn(case.batch, case.in_channels, *case.size).requires_grad_()
    weight = randn(case.out_channels, case.in_channels // case.groups, kh, kw).requires_grad_()
    b = randn(case.out_channels).requires_grad_() if bias else None
    return input, weight, b


def case_kwargs(case: ConvCase) -> dict:
    return dict(stride=case.stride, padding=case.padding, dilation=case.dilation, groups=case.groups)


def forward_and_grads(conv: Callable, input, weight, bias, grad_output: Optional[torch.Tensor], **kwargs):
    """The output and the gradients of (input, weight[, bias]) for the given grad_output (random if None)."""
    output = conv(input, weight, bias, **kwargs)
    if grad_output is None:
        grad_output = torch.randn(output.shape, generator=torch.Generator().manual_seed(1),
                                  dtype=torch.float64).to(output)
    leaves = [t for t in (input, weight, bias) if t is not None]
    grads = torch.autograd.grad(output, leaves, grad_output, allow_unused=True)
    return output, grads, grad_output


def assert_matches_torch(conv: Callable, case: ConvCase, dtype: torch.dtype, bias: bool, device: str = "cpu",
                         **tolerance) -> None:
    """conv's forward and all three gradients equal F.conv2d's on the case."""
    tolerance = tolerance or TOLERANCES[dtype]
    input, weight, b = make_tensors(case, dtype, bias, device)
    expected, expected_grads, grad_output = forward_and_grads(F.conv2d, input, weight, b, None, **case_kwargs(case))
    output, grads, _ = forward_and_grads(conv, input, weight, b, grad_output, **case_kwargs(case))
    assert output.shape == expected.shape
    torch.testing.assert_close(output, expected, **tolerance)
    for name, got, want in zip(("input", "weight", "bias"), grads, expected_grads):
        torch.testing.assert_close(got, want, **tolerance, msg=lambda m: f"grad of {name}: {m}")


grid = pytest.mark.parametrize("case", GRID, ids=GRID_IDS)
dtypes = pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
with_bias = pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
