"""The seed's approach, kept as the baseline and a second oracle: the convolution as F.unfold + matmul.

From the blog post "Convolutional Layer from Scratch": unfold the input into columns (one column per output
position, holding the receptive field), multiply by the flattened kernels, fold the result back into planes.
Generalised here to stride, padding, dilation and groups, with the signature of conv_ext.conv2d.
"""
from typing import Optional, Union

import torch
import torch.nn.functional as F

from .args import IntPair, normalize_conv_args
from .nn import _FunctionalConv2d


def conv2d_unfold(input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
                  stride: IntPair = 1, padding: Union[str, IntPair] = 0, dilation: IntPair = 1,
                  groups: int = 1) -> torch.Tensor:
    """torch.nn.functional.conv2d computed as F.unfold + matmul (+ bias); autograd does the backward."""
    a = normalize_conv_args(input, weight, bias, stride, padding, dilation, groups)
    # The op's Meta kernel checks the arguments and gives the output size, from the one formula in C++.
    batch, out_channels, out_h, out_w = torch.ops.conv_ext.conv2d(
        a.input.to("meta"), a.weight.to("meta"), None if a.bias is None else a.bias.to("meta"),
        a.stride, a.padding, a.dilation, a.groups).shape
    kernel_size = a.weight.shape[2:]
    columns = F.unfold(a.input, kernel_size, dilation=a.dilation, padding=a.padding, stride=a.stride)
    # columns: (N, C*kh*kw, L); group g uses rows [g*K, (g+1)*K) with K = (C/groups)*kh*kw.
    columns = columns.view(batch, a.groups, -1, out_h * out_w)
    kernels = a.weight.reshape(a.groups, out_channels // a.groups, -1)
    output = torch.matmul(kernels, columns).view(batch, out_channels, out_h, out_w)
    if a.bias is not None:
        output = output + a.bias.view(1, -1, 1, 1)
    return output.squeeze(0) if a.unbatched else output


class UnfoldConv2d(_FunctionalConv2d):
    """torch.nn.Conv2d computed by conv2d_unfold: the seed's layer, with nn.Conv2d's constructor."""

    conv2d_function = staticmethod(conv2d_unfold)
