"""Process-wide settings of the extension: the column workspace bound, its peak, and the kernel switches."""
from contextlib import contextmanager
from typing import Any, Callable, ContextManager, Iterator

from . import _C


@contextmanager
def _set_for_block(getter: Callable[[], Any], setter: Callable[[Any], None], value: Any) -> Iterator[None]:
    """Sets a process-wide setting for the duration of a block, then restores what it was."""
    previous = getter()
    setter(value)
    try:
        yield
    finally:
        setter(previous)


def workspace_limit_bytes() -> int:
    """The bound on the column workspace of one chunk of the batch, in bytes (default 64 MiB)."""
    return _C.workspace_limit_bytes()


def set_workspace_limit_bytes(limit: int) -> None:
    """Sets the column workspace bound. The batch is processed in chunks whose columns fit in it (at least one
    sample per chunk). Raises ValueError for a non-positive bound."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"conv_ext: the workspace limit must be an int number of bytes, got {type(limit).__name__}")
    _C.set_workspace_limit_bytes(limit)


def workspace_limit(limit: int) -> ContextManager[None]:
    """Context manager: sets the column workspace bound for the duration of the block."""
    return _set_for_block(workspace_limit_bytes, set_workspace_limit_bytes, limit)


def peak_workspace_bytes() -> int:
    """The largest column workspace the ops allocated since the last reset, in bytes."""
    return _C.peak_workspace_bytes()


def reset_peak_workspace_bytes() -> None:
    """Starts a new measurement for peak_workspace_bytes()."""
    _C.reset_peak_workspace_bytes()


def host_reference_kernels() -> ContextManager[None]:
    """Context manager (for tests): the CPU ops run the reference host loops over the per-element im2col/col2im
    bodies that the CUDA kernels run, instead of the fast CPU kernels."""
    return _set_for_block(_C.host_reference_kernels_enabled, _C.set_host_reference_kernels_enabled, True)


def cpu_gemm() -> str:
    """The GEMM that float32 convolutions run on the CPU: "avx512" (our kernel, on CPUs with AVX-512) or "aten"
    (ATen's GEMM: MKL or OpenBLAS, as torch.mm). Other dtypes always run ATen's."""
    return "avx512" if _C.avx512_gemm_enabled() else "aten"


def aten_gemm() -> ContextManager[None]:
    """Context manager (for tests and the benchmark): float32 convolutions on the CPU run ATen's GEMM instead of
    our AVX-512 kernel (and so no implicit GEMM) for the duration of the block."""
    return _set_for_block(_C.avx512_gemm_enabled, _C.set_avx512_gemm_enabled, False)


def cuda_built() -> bool:
    """Whether this build of the extension has the CUDA kernels."""
    return _C.cuda_built()
