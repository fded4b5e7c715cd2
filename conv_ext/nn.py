"""conv_ext.Conv2d, a drop-in torch.nn.Conv2d, and convert() to swap it into an existing model."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .args import same_padding
from .ops import conv2d
from .reference import FunctionalConv2d


class Conv2d(FunctionalConv2d):
    """torch.nn.Conv2d computed by conv_ext's ops. Same constructor, parameter names, shapes and
    initialisation as nn.Conv2d, so state_dicts load both ways. Works with torch.export, torch.jit.trace and
    torch.jit.script, and exports to ONNX (docs/deploying.md)."""

    conv2d_function = staticmethod(conv2d)

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor,
                      bias: Optional[torch.Tensor]) -> torch.Tensor:
        if not torch.jit.is_scripting():  # eager, torch.jit.trace, torch.export: conv2d() as above
            return super()._conv_forward(input, weight, bias)
        # torch.jit.script cannot compile conv2d() (Python argument handling): the same steps on the module's
        # attributes, which nn.Conv2d's constructor has already checked and turned into pairs.
        unbatched = input.dim() == 3
        if unbatched:
            input = input.unsqueeze(0)
        padding = (0, 0)
        if self.padding_mode != "zeros":
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
        elif isinstance(self.padding, str):
            if self.padding == "same":
                input, padding = same_padding(input, weight, self.stride, self.dilation)
        else:
            padding = self.padding
        output = torch.ops.conv_ext.conv2d(input, weight, bias, self.stride, padding, self.dilation, self.groups)
        return output.squeeze(0) if unbatched else output


def convert(model: nn.Module) -> nn.Module:
    """Replaces every torch.nn.Conv2d in `model` by conv_ext.Conv2d, in place, keeping the same parameter
    objects (weights, bias, requires_grad) and the training mode. Returns the model; a bare nn.Conv2d passed as
    `model` cannot be replaced in place, so the converted module is returned instead."""
    if type(model) is nn.Conv2d:
        return _converted(model)
    for name, child in model.named_children():
        if type(child) is nn.Conv2d:
            setattr(model, name, _converted(child))
        else:
            convert(child)
    return model


def _converted(conv: nn.Conv2d) -> Conv2d:
    new = Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                 conv.groups, conv.bias is not None, conv.padding_mode, device="meta", dtype=conv.weight.dtype)
    new.weight = conv.weight
    new.bias = conv.bias
    new.train(conv.training)
    return new
