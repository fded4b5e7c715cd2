"""The textbook convolution in plain torch: im2col (F.unfold) + one matrix product per group, and col2im (F.fold)
in its backward.

The seed's approach (the blog post "Convolutional Layer from Scratch"): unfold the input into columns, one per
output position holding its receptive field, multiply by the flattened kernels, fold the result back into planes.
Generalised here to F.conv2d's signature (stride, padding including 'same' and 'valid', dilation, groups, bias,
unbatched input, empty batches). It is the benchmark's baseline and an oracle independent of the extension.

This file imports torch and nothing else (no conv_ext._C, no other conv_ext module): it can be loaded alone, or
copied out of the project. For the same reason it has its own copy of the output-size formula and of the argument
rules, so that a mistake in the extension's (csrc/ops/conv2d_args.h and .cpp, conv_ext/args.py) does not hide in
the oracle too.

- ``conv2d_unfold(..., backward="autograd")``: autograd differentiates unfold + matmul (the seed's way).
- ``conv2d_unfold(..., backward="textbook")``: Conv2dUnfoldFunction, whose backward is written out:
  dx = col2im(w^T . dy), dw = sum over the batch of dy . cols^T, db = sum of dy.
- ``UnfoldConv2d``: torch.nn.Conv2d computed by conv2d_unfold.
"""
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

IntPair = Union[int, Sequence[int]]
Pair = Tuple[int, int]
BACKWARDS = ("autograd", "textbook")


def output_length(length: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """The output length of one spatial dimension: Ho = floor((H + 2p - d(k-1) - 1) / s) + 1.

    The reference's own copy of the formula (the extension's is conv_output_length in csrc/ops/conv2d_args.h)."""
    return (length + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _error(message: str) -> ValueError:
    return ValueError(f"conv2d_unfold: {message}")


def _pair(name: str, value: IntPair) -> Pair:
    """An int or a sequence of one or two ints, as a pair."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, (tuple, list, torch.Size)) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        if len(value) in (1, 2):
            return (value[0], value[-1])
        raise _error(f"{name} must be an int or a pair of ints, got {len(value)} values {tuple(value)}")
    raise TypeError(f"conv2d_unfold: {name} must be an int or a pair of ints, got {value!r}")


def _check_args(input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], stride: Pair,
                padding: Pair, dilation: Pair, groups: int) -> None:
    """Raises ValueError naming the problem when F.conv2d would refuse the (4-D input) arguments."""
    for name, values, least in (("stride", stride, 1), ("padding", padding, 0), ("dilation", dilation, 1)):
        if min(values) < least:
            raise _error(f"{name} must be {'positive' if least else 'non-negative'}, got {list(values)}")
    if groups <= 0:
        raise _error(f"groups must be positive, got {groups}")
    in_channels, out_channels = input.shape[1], weight.shape[0]
    for name, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
        if channels % groups:
            raise _error(f"{name} ({channels}) is not divisible by groups ({groups})")
    if in_channels != weight.shape[1] * groups:
        raise _error(f"input has {in_channels} channels but weight of size {list(weight.shape)} with groups={groups} "
                     f"expects {weight.shape[1] * groups} (weight.size(1) * groups)")
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise _error(f"expected bias of size ({out_channels}) (out_channels), got {list(bias.shape)}")
    kernel = list(weight.shape[2:])
    for n, k, p, d in zip(input.shape[2:], kernel, padding, dilation):
        if k < 1 or n + 2 * p < d * (k - 1) + 1:
            raise _error(f"kernel size {kernel} ({d * (k - 1) + 1} after dilation {list(dilation)}) is larger than "
                         f"the padded input {list(input.shape[2:])} + 2 * padding {list(padding)}: the output would "
                         "be empty")


def _unfold_matmul(input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], stride: Pair,
                   padding: Pair, dilation: Pair, groups: int) -> torch.Tensor:
    """The forward: columns = im2col(input), output = kernels . columns per group (+ bias). 4-D input."""
    batch, channels, height, width = input.shape
    out_channels, _, kh, kw = weight.shape
    out_h, out_w = (output_length(n, k, s, p, d) for n, k, s, p, d in
                    zip((height, width), (kh, kw), stride, padding, dilation))
    columns = F.unfold(input, (kh, kw), dilation=dilation, padding=padding, stride=stride)
    # columns: (N, C*kh*kw, L); group g holds rows [g*K, (g+1)*K), K = (C/groups)*kh*kw.
    columns = columns.view(batch, groups, channels // groups * kh * kw, out_h * out_w)
    kernels = weight.reshape(groups, out_channels // groups, -1)
    output = torch.matmul(kernels, columns).view(batch, out_channels, out_h, out_w)
    return output if bias is None else output + bias.view(1, -1, 1, 1)


class Conv2dUnfoldFunction(torch.autograd.Function):
    """The unfold + matmul forward with the textbook backward written out. For one group, with the columns
    cols = im2col(x) (K x L per sample) and the kernels w (O x K):

    - dx = col2im(w^T . dy): each column's gradient is scattered back onto the receptive field it was read from,
      overlapping fields summed (F.fold);
    - dw = sum over the batch of dy . cols^T;
    - db = the sum of dy over the batch and the output positions.

    The backward recomputes the columns from the saved input and is made of differentiable torch ops, so it can
    be differentiated again. Arguments as _unfold_matmul's (4-D input, pairs), already checked."""

    @staticmethod
    def forward(ctx: Any, input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], stride: Pair,
                padding: Pair, dilation: Pair, groups: int) -> torch.Tensor:
        """unfold + matmul (+ bias); saves the input and the weight."""
        ctx.save_for_backward(input, weight)
        ctx.conv_args = (stride, padding, dilation, groups)
        return _unfold_matmul(input, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:
        """dx by col2im, dw and db by sums over the batch (see the class docstring)."""
        input, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv_args
        batch, channels, height, width = input.shape
        out_channels, _, kh, kw = weight.shape
        rows, positions = channels // groups * kh * kw, grad_output.shape[2] * grad_output.shape[3]
        dy = grad_output.reshape(batch, groups, out_channels // groups, positions)
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            kernels = weight.reshape(groups, out_channels // groups, rows)
            grad_columns = torch.matmul(kernels.transpose(1, 2), dy)  # (N, groups, K, L)
            grad_input = F.fold(grad_columns.reshape(batch, groups * rows, positions), (height, width), (kh, kw),
                                dilation=dilation, padding=padding, stride=stride)
        if ctx.needs_input_grad[1]:
            columns = F.unfold(input, (kh, kw), dilation=dilation, padding=padding, stride=stride)
            columns = columns.view(batch, groups, rows, positions)
            grad_weight = torch.matmul(dy, columns.transpose(2, 3)).sum(0).reshape(weight.shape)
        if ctx.needs_input_grad[2]:
            grad_bias = grad_output.sum((0, 2, 3))
        return grad_input, grad_weight, grad_bias, None, None, None, None


def conv2d_unfold(input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
                  stride: IntPair = 1, padding: Union[str, IntPair] = 0, dilation: IntPair = 1, groups: int = 1,
                  backward: str = "autograd") -> torch.Tensor:
    """torch.nn.functional.conv2d computed as F.unfold + matmul (+ bias), for every shape F.conv2d takes.

    ``backward``: "autograd" (autograd differentiates unfold + matmul) or "textbook" (Conv2dUnfoldFunction:
    col2im for dx). Raises ValueError / TypeError naming the problem for arguments F.conv2d refuses."""
    if backward not in BACKWARDS:
        raise _error(f"backward must be one of {', '.join(map(repr, BACKWARDS))}, got {backward!r}")
    if not isinstance(input, torch.Tensor) or not isinstance(weight, torch.Tensor):
        raise TypeError(f"conv2d_unfold: input and weight must be tensors, got {type(input).__name__} and "
                        f"{type(weight).__name__}")
    if bias is not None and not isinstance(bias, torch.Tensor):
        raise TypeError(f"conv2d_unfold: bias must be a tensor or None, got {type(bias).__name__}")
    if isinstance(groups, bool) or not isinstance(groups, int):
        raise TypeError(f"conv2d_unfold: groups must be an int, got {groups!r}")
    if input.dim() not in (3, 4):
        raise _error(f"expected 3-D (unbatched) or 4-D (batched) input, got {input.dim()}-D input of size "
                     f"{list(input.shape)}")
    if weight.dim() != 4:
        raise _error(f"expected a 4-D weight (out_channels, in_channels/groups, kH, kW), got {weight.dim()}-D weight "
                     f"of size {list(weight.shape)}")
    unbatched = input.dim() == 3
    if unbatched:
        input = input.unsqueeze(0)
    stride, dilation = _pair("stride", stride), _pair("dilation", dilation)
    if padding == "valid":
        padding = (0, 0)
    elif padding == "same":
        if stride != (1, 1):
            raise _error(f"padding='same' is not supported for strided convolutions (stride={stride})")
        # Total padding d*(k-1) per dimension; an odd total puts the extra row/column at the bottom/right, as torch.
        totals = [d * (k - 1) for d, k in zip(dilation, weight.shape[2:])]
        input = F.pad(input, (0, totals[1] % 2, 0, totals[0] % 2))
        padding = (totals[0] // 2, totals[1] // 2)
    elif isinstance(padding, str):
        raise _error(f"padding must be 'valid', 'same', an int or a pair of ints, got {padding!r}")
    else:
        padding = _pair("padding", padding)
    _check_args(input, weight, bias, stride, padding, dilation, groups)

    if input.shape[1] == 0:
        # No input channels: as F.conv2d, an output without channels (whatever out_channels is) and zero
        # gradients; F.unfold refuses such an input. The empty sums keep the graph to input, weight and bias.
        batch, _, height, width = input.shape
        out_h, out_w = (output_length(n, k, s, p, d) for n, k, s, p, d in
                        zip((height, width), weight.shape[2:], stride, padding, dilation))
        output = input.new_zeros(batch, 0, out_h, out_w) + input.sum() + weight.sum()
        if bias is not None:
            output = output + bias[:0].view(1, 0, 1, 1)
    elif backward == "textbook":
        output = Conv2dUnfoldFunction.apply(input, weight, bias, stride, padding, dilation, groups)
    else:
        output = _unfold_matmul(input, weight, bias, stride, padding, dilation, groups)
    return output.squeeze(0) if unbatched else output


class FunctionalConv2d(nn.Conv2d):
    """torch.nn.Conv2d whose convolution is ``conv2d_function`` (F.conv2d's signature). Everything else is
    nn.Conv2d's own: constructor, parameters, initialisation, state_dict, padding_mode, repr. The base of
    UnfoldConv2d here and of conv_ext.Conv2d."""

    conv2d_function: Callable[..., torch.Tensor]

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor,  # type: ignore[override]
                      bias: Optional[torch.Tensor]) -> torch.Tensor:
        conv = type(self).conv2d_function
        if self.padding_mode != "zeros":  # as nn.Conv2d: pad explicitly, then convolve without padding
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return conv(input, weight, bias, self.stride, 0, self.dilation, self.groups)
        return conv(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)


class UnfoldConv2d(FunctionalConv2d):
    """torch.nn.Conv2d computed by conv2d_unfold (autograd's backward): the seed's layer, with nn.Conv2d's
    constructor."""

    conv2d_function = staticmethod(conv2d_unfold)
