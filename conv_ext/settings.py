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
    """The bound on the column workspace, in bytes (default 64 MiB): of one chunk of the batch on the textbook
    path, of the tiles in flight on the tiled path (the column-free kernels allocate none)."""
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


def im2col_gemm_enabled() -> bool:
    """Whether the CPU ops run the plain im2col + GEMM path (see im2col_gemm()); False by default."""
    return _C.host_reference_kernels_enabled()


def im2col_gemm() -> ContextManager[None]:
    """Context manager: for the duration of the block, convolutions on the CPU run the plain im2col + GEMM path,
    the textbook algorithm, instead of the column-free CPU kernels (and the tiled path).

    That path is csrc/textbook/textbook_conv2d.cpp's orchestration, the one the CUDA op runs: per chunk of the
    batch, im2col into a column workspace, one GEMM per group through ATen (MKL or OpenBLAS), the bias; for the
    backward, the GEMMs for dw and the columns of dx, then col2im into dx. Its im2col and col2im are the
    per-element bodies of csrc/textbook/im2col.h that the CUDA kernels run, launched by a host loop. Every dtype
    and shape the op takes runs on it; it is slower than the default CPU kernels, and is there to read, to
    compare against and to test the code the GPU runs on a CPU. CUDA tensors are unaffected (they always take
    this path)."""
    return _set_for_block(_C.host_reference_kernels_enabled, _C.set_host_reference_kernels_enabled, True)


def cpu_simd_isa() -> str:
    """The best instruction set this CPU offers the float32 SIMD kernels: "avx512" (AVX-512F), "avx2" (AVX2 with
    FMA) or "none"."""
    return _C.cpu_simd_isa()


def current_simd_isa() -> str:
    """The instruction set float32 convolutions on the CPU run on now: "avx512" or "avx2" (the SIMD kernels: the
    column-free kernels; the tiled path runs ATen's GEMM on every instruction set), or "none" (the tiled path on
    ATen's GEMM, MKL or OpenBLAS as torch.mm, and the scalar depthwise loops: on CPUs with neither, or under
    simd_isa("none")). Other dtypes always run the latter."""
    return _C.simd_isa()


def simd_isa(isa: str) -> ContextManager[None]:
    """Context manager: for the duration of the block, the float32 SIMD kernels run on instruction set ``isa``:
    "avx2" runs the AVX2 build on an AVX-512 CPU, "none" switches every SIMD kernel off (the tiled path on ATen's
    GEMM), "avx512" the default on an AVX-512 CPU. Raises ValueError for a name it does not know, or one this CPU
    does not offer."""
    order = ["none", "avx2", "avx512"]
    if isa not in order:
        raise ValueError(f"conv_ext: unknown instruction set {isa!r}; expected one of {', '.join(order)}")
    if order.index(isa) > order.index(cpu_simd_isa()):
        raise ValueError(f"conv_ext: this CPU does not offer {isa} (its best: {cpu_simd_isa()})")
    return _set_for_block(_C.simd_isa_limit, _C.set_simd_isa_limit, isa)


def cuda_built() -> bool:
    """Whether this build of the extension has the CUDA kernels."""
    return _C.cuda_built()
