"""The registered ops (torch.ops.conv_ext.conv2d / conv2d_backward), their autograd, and conv2d().

The C++ library registers the schemas, the CPU (and CUDA) kernels and the Meta kernels used for tracing.
Autograd is defined once, by _setup_context and _backward below: registered on the op itself (so the op is
differentiable when called directly, and under torch.compile) and reused by Conv2dFunction.
"""
from typing import Any, Optional, Tuple, Union

import torch

from . import _C  # noqa: F401  (loads the library, which registers torch.ops.conv_ext)
from .args import IntPair, normalize_conv_args


def _setup_context(ctx: Any, inputs: Tuple[Any, ...], output: torch.Tensor) -> None:
    input, weight, bias, stride, padding, dilation, groups = inputs
    # Only the input and the weight are saved: the backward recomputes the columns chunk by chunk.
    ctx.save_for_backward(input, weight)
    ctx.conv_args = (stride, padding, dilation, groups)
    ctx.has_bias = bias is not None


def _backward(ctx: Any, grad_output: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:
    input, weight = ctx.saved_tensors
    output_mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
    grads = [None, None, None]
    if any(output_mask):
        computed = torch.ops.conv_ext.conv2d_backward(grad_output, input, weight, *ctx.conv_args, output_mask)
        grads = [g if wanted else None for g, wanted in zip(computed, output_mask)]
    return (*grads, None, None, None, None)


torch.library.register_autograd("conv_ext::conv2d", _backward, setup_context=_setup_context)


class Conv2dFunction(torch.autograd.Function):
    """The convolution as a torch.autograd.Function over the registered ops.

    apply(input, weight, bias, stride, padding, dilation, groups) takes the op's normalised arguments: a 4-D
    input, pairs of ints, explicit padding. Its backward is the op's own (_backward), one definition for both.
    """

    @staticmethod
    def forward(input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], stride: Tuple[int, int],
                padding: Tuple[int, int], dilation: Tuple[int, int], groups: int) -> torch.Tensor:
        return torch.ops.conv_ext.conv2d(input, weight, bias, stride, padding, dilation, groups)

    setup_context = staticmethod(_setup_context)
    backward = staticmethod(_backward)


def conv2d(input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, stride: IntPair = 1,
           padding: Union[str, IntPair] = 0, dilation: IntPair = 1, groups: int = 1) -> torch.Tensor:
    """2-D convolution by im2col + GEMM, with the semantics of torch.nn.functional.conv2d.

    input (N, C, H, W) or unbatched (C, H, W); weight (O, C/groups, kH, kW); bias (O,) or None; stride, padding
    and dilation an int or a pair; padding also 'valid' or 'same' (stride 1 only). Differentiable in input,
    weight and bias. Raises ValueError / TypeError naming the problem for invalid arguments.
    """
    args = normalize_conv_args(input, weight, bias, stride, padding, dilation, groups)
    output = torch.ops.conv_ext.conv2d(args.input, args.weight, args.bias, args.stride, args.padding,
                                       args.dilation, args.groups)
    return output.squeeze(0) if args.unbatched else output
