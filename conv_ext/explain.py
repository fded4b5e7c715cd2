"""conv_ext.explain(): which kernel runs each pass of a convolution, and the rule that chose it."""
from typing import Dict, NamedTuple, Optional, Union

import torch

from . import _C
from .args import IntPair, normalize_conv_args
from .settings import im2col_gemm_enabled

_PASSES = ("forward", "grad_input", "grad_weight")
_TEXTBOOK_RULE = ("the textbook path: im2col, one GEMM per group, bias; col2im for grad_input "
                 "(always on CUDA; on the CPU under conv_ext.im2col_gemm())")


class KernelChoice(NamedTuple):
    """A pass's kernel ('implicit', 'exact_taps', 'padded', 'depthwise_simd', 'phased', 'depthwise',
    'depthwise_nhwc', 'direct_nhwc', 'tiled_nhwc', 'tiled' or 'textbook') and the rule, in words, that chose it (csrc/cpu/kernel_table.cpp)."""
    kernel: str
    rule: str


def explain(input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, stride: IntPair = 1,
            padding: Union[str, IntPair] = 0, dilation: IntPair = 1, groups: int = 1) -> Dict[str, KernelChoice]:
    """For conv_ext.conv2d with these arguments (F.conv2d's), the kernel that runs the forward, the input gradient
    and the weight gradient, as {"forward": KernelChoice(kernel, rule), "grad_input": ..., "grad_weight": ...}.
    The CPU's choice follows the settings in force (instruction set, im2col_gemm()); tensors are only looked at, no
    convolution runs. Raises what conv_ext.conv2d raises for invalid arguments."""
    a = normalize_conv_args(input, weight, bias, stride, padding, dilation, groups)
    meta = [None if t is None else t.to("meta") for t in (a.input, a.weight, a.bias)]
    torch.ops.conv_ext.conv2d(*meta, a.stride, a.padding, a.dilation, a.groups)  # the op's checks, on no data
    if a.input.device.type != "cpu" or im2col_gemm_enabled():
        return {name: KernelChoice("textbook", _TEXTBOOK_RULE) for name in _PASSES}
    choices = _C._cpu_kernels(a.input, a.weight, list(a.stride), list(a.padding), list(a.dilation), a.groups)
    return {name: KernelChoice(kernel, rule) for name, (kernel, rule) in zip(_PASSES, choices)}
