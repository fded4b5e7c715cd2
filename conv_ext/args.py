"""Argument normalisation of conv_ext.conv2d: ints -> pairs, the padding strings 'same' and 'valid', and
unbatched (3-D) input. The checks of values and shapes live in the C++ op. (conv_ext/reference.py has its own
copy of these rules, as an independent oracle.)"""
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

IntPair = Union[int, Sequence[int]]


class ConvArgs(NamedTuple):
    """The op's arguments after normalize_conv_args: a 4-D input, pairs, explicit symmetric padding."""
    input: torch.Tensor  # 4-D
    weight: torch.Tensor
    bias: Optional[torch.Tensor]
    stride: Tuple[int, int]
    padding: Tuple[int, int]
    dilation: Tuple[int, int]
    groups: int
    unbatched: bool  # the caller passed a 3-D input; squeeze the batch dimension off the output


def _pair(name: str, value: IntPair) -> Tuple[int, int]:
    # The common cases first (an int, a pair of ints, as nn.Conv2d holds them): a small layer's call is a few us.
    if type(value) is int:
        return (value, value)
    if type(value) is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, (tuple, list, torch.Size)) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        if len(value) == 1:
            return (value[0], value[0])
        if len(value) == 2:
            return (value[0], value[1])
        raise ValueError(f"conv_ext.conv2d: {name} must be an int or a pair of ints, got {len(value)} values "
                         f"{tuple(value)}")
    raise TypeError(f"conv_ext.conv2d: {name} must be an int or a pair of ints, got {value!r}")


def same_padding(input: torch.Tensor, weight: torch.Tensor, stride: Tuple[int, int],
                 dilation: Tuple[int, int]) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """padding='same': total padding d*(k-1) per side pair; an odd total puts the extra row/column at the
    bottom/right (as torch does), by padding the input itself. Written for TorchScript too (conv_ext.Conv2d's
    scripted forward calls it)."""
    if stride != (1, 1):
        raise ValueError(f"conv_ext.conv2d: padding='same' is not supported for strided convolutions "
                         f"(stride={stride})")
    if weight.dim() != 4:  # the op's own check reports it
        return input, (0, 0)
    total_h = dilation[0] * (weight.shape[2] - 1)
    total_w = dilation[1] * (weight.shape[3] - 1)
    if total_h % 2 or total_w % 2:
        input = F.pad(input, (0, total_w % 2, 0, total_h % 2))
    return input, (total_h // 2, total_w // 2)


def normalize_conv_args(input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                        stride: IntPair, padding: Union[str, IntPair], dilation: IntPair, groups: int) -> ConvArgs:
    """Turns F.conv2d-style arguments into the op's: 4-D input, explicit symmetric padding, pairs."""
    if not isinstance(input, torch.Tensor) or not isinstance(weight, torch.Tensor):
        raise TypeError(f"conv_ext.conv2d: input and weight must be tensors, got {type(input).__name__} and "
                        f"{type(weight).__name__}")
    if bias is not None and not isinstance(bias, torch.Tensor):
        raise TypeError(f"conv_ext.conv2d: bias must be a tensor or None, got {type(bias).__name__}")
    if type(groups) is not int and (isinstance(groups, bool) or not isinstance(groups, int)):
        raise TypeError(f"conv_ext.conv2d: groups must be an int, got {groups!r}")
    dim = input.dim()
    if dim != 4 and dim != 3:
        raise ValueError(f"conv_ext.conv2d: expected 3-D (unbatched) or 4-D (batched) input, got {dim}-D "
                         f"input of size {tuple(input.shape)}")
    stride = _pair("stride", stride)
    dilation = _pair("dilation", dilation)
    unbatched = dim == 3
    if unbatched:
        input = input.unsqueeze(0)
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same":
            input, padding = same_padding(input, weight, stride, dilation)
        else:
            raise ValueError(f"conv_ext.conv2d: padding must be 'valid', 'same', an int or a pair of ints, "
                             f"got {padding!r}")
    else:
        padding = _pair("padding", padding)
    return ConvArgs(input, weight, bias, stride, padding, dilation, groups, unbatched)
