"""conv_ext.Conv2d, a drop-in torch.nn.Conv2d, and convert() to swap it into an existing model."""
from torch import nn

from .ops import conv2d
from .reference import FunctionalConv2d


class Conv2d(FunctionalConv2d):
    """torch.nn.Conv2d computed by conv_ext's im2col + GEMM ops. Same constructor, parameter names, shapes and
    initialisation as nn.Conv2d, so state_dicts load both ways."""

    conv2d_function = staticmethod(conv2d)


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
