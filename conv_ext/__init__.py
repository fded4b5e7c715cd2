"""conv_ext: a 2-D convolution layer from scratch, im2col + GEMM as a PyTorch C++/CUDA extension."""
import torch  # noqa: F401  (the extension links against torch's libraries: load them first)

try:
    from . import _C  # noqa: F401  (registers torch.ops.conv_ext)
except ImportError as error:
    raise ImportError(
        "conv_ext's C++ extension (conv_ext._C) is not built, or was built against another torch: run "
        "`pip install --no-build-isolation -e .` (or `make build`) in this environment. Original error: "
        f"{error}") from error

from . import reference
from .explain import KernelChoice, explain
from .export import decompositions, onnx_translation_table
from .nn import Conv2d, convert
from .ops import Conv2dFunction, conv2d
from .settings import (cuda_built, im2col_gemm, im2col_gemm_enabled, peak_workspace_bytes, reset_peak_workspace_bytes,
                       set_workspace_limit_bytes, workspace_limit, workspace_limit_bytes)

__all__ = [
    "Conv2d", "Conv2dFunction", "KernelChoice", "conv2d", "convert", "cuda_built", "decompositions", "explain",
    "im2col_gemm", "im2col_gemm_enabled", "onnx_translation_table", "peak_workspace_bytes", "reference",
    "reset_peak_workspace_bytes",
    "set_workspace_limit_bytes", "workspace_limit", "workspace_limit_bytes",
]
