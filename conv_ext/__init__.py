"""conv_ext: a 2-D convolution layer from scratch, im2col + GEMM as a PyTorch C++/CUDA extension."""
from . import reference
from .nn import Conv2d, convert
from .ops import Conv2dFunction, conv2d
from .settings import (cuda_built, peak_workspace_bytes, reset_peak_workspace_bytes, set_workspace_limit_bytes,
                       workspace_limit, workspace_limit_bytes)

__all__ = [
    "Conv2d", "Conv2dFunction", "conv2d", "convert", "cuda_built", "peak_workspace_bytes", "reference",
    "reset_peak_workspace_bytes", "set_workspace_limit_bytes", "workspace_limit", "workspace_limit_bytes",
]
