"""The registered ops (torch.ops.conv_ext.conv2d / conv2d_backward), their autograd, and conv2d().

The C++ library registers the schemas, the CPU (and CUDA) kernels, the Meta kernels used for tracing, and the
forward op's autograd (csrc/ops/conv2d_autograd.cpp: no Python on the way through autograd, which small convolutions
paid for). Conv2dFunction is the same rule as a Python torch.autograd.Function (_setup_context and _backward
below). The backward op is differentiable too (_double_backward: double, triple, ... backward), and the forward op
has Autocast kernels that follow F.conv2d's autocast policy. torch.func transforms do not apply: functorch refuses
a C++ torch::autograd::Function.
"""
from typing import Any, Callable, List, Optional, Tuple, Union

import torch

from . import _C  # loads the library, which registers torch.ops.conv_ext
from .args import IntPair, normalize_conv_args


def _setup_context(ctx: Any, inputs: Tuple[Any, ...], output: torch.Tensor) -> None:
    input, weight, bias, stride, padding, dilation, groups = inputs
    # Only the input and the weight are saved: the backward recomputes what it needs from them.
    ctx.save_for_backward(input, weight)
    ctx.conv_args = (stride, padding, dilation, groups)
    ctx.has_bias = bias is not None


def _backward(ctx: Any, grad_output: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:
    input, weight = ctx.saved_tensors
    if grad_output.dtype != input.dtype:
        # Conv2dFunction under autocast: it saved the tensors it was given, the forward op computed in the
        # autocast dtype (that of its output and grad_output). The backward uses what the forward used.
        input, weight = input.to(grad_output.dtype), weight.to(grad_output.dtype)
    output_mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
    grads = [None, None, None]
    if any(output_mask):
        computed = torch.ops.conv_ext.conv2d_backward(grad_output, input, weight, *ctx.conv_args, output_mask)
        grads = [g if wanted else None for g, wanted in zip(computed, output_mask)]
    return (*grads, None, None, None, None)


# Double backward. With T(x, w, gy) = <conv(x, w), gy>, the backward op returns gx = dT/dx (bilinear in gy, w),
# gw = dT/dw (bilinear in x, gy) and gb = sum(gy). For incoming grads (ggx, ggw, ggb) of those outputs:
#   d/d(gy) = conv(ggx, w) + conv(x, ggw) + ggb (broadcast over N, Ho, Wo)
#   d/d(x)  = conv2d_backward_input(gy, ggw)    (from <ggw, gw> = T(x, ggw, gy))
#   d/d(w)  = conv2d_backward_weight(ggx, gy)   (from <ggx, gx> = T(ggx, w, gy))
# Every term is one of our own differentiable ops, so triple (and higher) backward works too.
def _setup_context_backward(ctx: Any, inputs: Tuple[Any, ...], output: Tuple[torch.Tensor, ...]) -> None:
    grad_output, input, weight, stride, padding, dilation, groups, output_mask = inputs
    ctx.save_for_backward(grad_output, input, weight)
    ctx.conv_args = (stride, padding, dilation, groups)
    ctx.output_mask = tuple(output_mask)


def _double_backward(ctx: Any, grad_grad_input: Optional[torch.Tensor], grad_grad_weight: Optional[torch.Tensor],
                     grad_grad_bias: Optional[torch.Tensor]) -> Tuple[Optional[torch.Tensor], ...]:
    grad_output, input, weight = ctx.saved_tensors
    conv_args = ctx.conv_args
    # Incoming grads of outputs that were not computed (empty placeholders) carry nothing.
    ggx, ggw, ggb = (g if computed else None for g, computed in
                     zip((grad_grad_input, grad_grad_weight, grad_grad_bias), ctx.output_mask))
    new_grad_output = new_input = new_weight = None
    if ctx.needs_input_grad[0]:
        terms = []
        if ggx is not None:
            terms.append(torch.ops.conv_ext.conv2d(ggx, weight, None, *conv_args))
        if ggw is not None:
            terms.append(torch.ops.conv_ext.conv2d(input, ggw, None, *conv_args))
        if ggb is not None:
            terms.append(ggb.view(1, -1, 1, 1).expand(grad_output.shape))
        new_grad_output = sum(terms[1:], terms[0]) if terms else None
    if ctx.needs_input_grad[1] and ggw is not None:
        new_input = torch.ops.conv_ext.conv2d_backward(grad_output, input, ggw, *conv_args, [True, False, False])[0]
    if ctx.needs_input_grad[2] and ggx is not None:
        new_weight = torch.ops.conv_ext.conv2d_backward(grad_output, ggx, weight, *conv_args, [False, True, False])[1]
    return (new_grad_output, new_input, new_weight, None, None, None, None, None)


torch.library.register_autograd("conv_ext::conv2d_backward", _double_backward,
                                setup_context=_setup_context_backward)


def _autocast_eligible(tensor: Optional[torch.Tensor], device_type: str) -> bool:
    """As ATen's autocast: floating-point tensors on the autocast device, except float64, are cast."""
    return (tensor is not None and tensor.device.type == device_type and tensor.is_floating_point()
            and tensor.dtype != torch.float64)


def _make_autocast_kernel(device_type: str) -> Callable[..., torch.Tensor]:
    """The forward op's Autocast<device> kernel: F.conv2d's autocast policy (lower precision), in the dtype of
    the enclosing autocast region (torch.get_autocast_dtype), then the op itself with autocast off."""
    def autocast_conv2d(input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                        stride: List[int], padding: List[int], dilation: List[int], groups: int) -> torch.Tensor:
        dtype = torch.get_autocast_dtype(device_type)
        input, weight, bias = (t.to(dtype) if _autocast_eligible(t, device_type) else t
                               for t in (input, weight, bias))
        with torch.autocast(device_type, enabled=False):
            return torch.ops.conv_ext.conv2d(input, weight, bias, stride, padding, dilation, groups)
    return autocast_conv2d


# torch.library.register_autocast would cast to one fixed dtype; F.conv2d follows the autocast region's dtype.
_autocast_library = torch.library.Library("conv_ext", "IMPL")
for _device_type, _dispatch_key in (("cpu", "AutocastCPU"), ("cuda", "AutocastCUDA")):
    _autocast_library.impl("conv2d", _make_autocast_kernel(_device_type), _dispatch_key)


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
    """2-D convolution with the semantics of torch.nn.functional.conv2d, on conv_ext's kernels (conv_ext.explain
    tells which runs each pass).

    input (N, C, H, W) or unbatched (C, H, W); weight (O, C/groups, kH, kW); bias (O,) or None; stride, padding
    and dilation an int or a pair; padding also 'valid' or 'same' (stride 1 only). Differentiable in input,
    weight and bias. Raises ValueError / TypeError naming the problem for invalid arguments.
    """
    input, weight, bias, stride, padding, dilation, groups, unbatched = normalize_conv_args(
        input, weight, bias, stride, padding, dilation, groups)
    # torch.ops parses its arguments against the schema, boxed (about 4 us, as long as a small layer's kernels):
    # eager calls take the op's direct binding, through the same dispatcher. Under torch.compile (to which _C is
    # opaque) and for tensors with __torch_function__ overrides or modes (which torch.ops calls honour), torch.ops.
    if torch.compiler.is_compiling() or torch._C._has_torch_function_variadic(input, weight, bias):
        op = torch.ops.conv_ext.conv2d
    else:
        op = _C.conv2d
    output = op(input, weight, bias, stride, padding, dilation, groups)
    return output.squeeze(0) if unbatched else output
