"""Deployment: conv_ext::conv2d as the standard convolution, for the tools that cannot run the extension's op.

onnx_translation_table() gives torch.onnx.export (the dynamo exporter) the op as ONNX's Conv, so the ONNX model
has no custom domain; decompositions() gives ExportedProgram.run_decompositions the op as aten.convolution, so an
exported program runs where conv_ext is not installed. Both read the op's own arguments, already normalised by
conv2d() (pairs, symmetric explicit padding; 'same' with an odd total has padded the input before the op).
The legacy TorchScript-based ONNX exporter (dynamo=False) is refused with an error that names the call to use.
"""
from typing import Any, Callable, Dict, Optional, Sequence

import torch

_CONV2D = "conv_ext::conv2d"
_DYNAMO_EXPORT = ("torch.onnx.export(model, args, dynamo=True, "
                  "custom_translation_table=conv_ext.onnx_translation_table())")


def _conv2d_as_convolution(input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                           stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int],
                           groups: int) -> torch.Tensor:
    return torch.ops.aten.convolution.default(input, weight, bias, stride, padding, dilation, False, [0, 0],
                                              groups)


def decompositions() -> Dict[Any, Callable[..., torch.Tensor]]:
    """The decomposition of conv_ext::conv2d into aten.convolution, as a table for
    ``torch.export.ExportedProgram.run_decompositions``: ``ep.run_decompositions(conv_ext.decompositions())``
    replaces every conv_ext op and leaves the other ops as they are; merge it into
    ``torch.export.default_decompositions()`` to lower to core ATen as well. The result runs without conv_ext."""
    return {torch.ops.conv_ext.conv2d.default: _conv2d_as_convolution}


def _onnx_conv2d(input: Any, weight: Any, bias: Optional[Any], stride: Sequence[int], padding: Sequence[int],
                 dilation: Sequence[int], groups: int) -> Any:
    """conv_ext::conv2d as ONNX's Conv (onnxscript builds the node while torch.onnx traces the graph)."""
    from onnxscript import opset18 as op  # Conv is unchanged from opset 11 to 21; 22 only adds bfloat16

    pads = [padding[0], padding[1], padding[0], padding[1]]  # ONNX: starts (top, left), then ends
    inputs = (input, weight) if bias is None else (input, weight, bias)
    return op.Conv(*inputs, strides=list(stride), pads=pads, dilations=list(dilation), group=groups)


def onnx_translation_table() -> Dict[Any, Callable[..., Any]]:
    """The translation of conv_ext::conv2d to the standard ONNX Conv operator, for the dynamo ONNX exporter:
    ``torch.onnx.export(model, args, dynamo=True, custom_translation_table=conv_ext.onnx_translation_table())``.
    Needs onnx and onnxscript (``pip install onnx onnxscript``, or the ``export`` extra of conv_ext)."""
    try:
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise ImportError(f"conv_ext.onnx_translation_table() needs onnxscript, which torch.onnx.export uses as "
                          f"well: `pip install onnx onnxscript` (or conv_ext's `export` extra). Original error: "
                          f"{error}") from error
    return {torch.ops.conv_ext.conv2d.default: _onnx_conv2d}


def _refuse_legacy_onnx_export(g: Any, *args: Any) -> None:
    raise RuntimeError(f"{_CONV2D} is exported to ONNX by the dynamo exporter, not the TorchScript-based one "
                       f"(dynamo=False): call {_DYNAMO_EXPORT}")


# torch.onnx.export(..., dynamo=False) on a conv_ext op then fails with an error naming the exporter call that
# works, instead of torch's 'unrecognized namespace'. A torch without the legacy exporter has nothing to register.
if hasattr(torch.onnx, "register_custom_op_symbolic"):
    torch.onnx.register_custom_op_symbolic(_CONV2D, _refuse_legacy_onnx_export, 9)
