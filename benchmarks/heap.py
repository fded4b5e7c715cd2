"""glibc's heap, pinned for the run: no trimming, no block served by mmap.

By default glibc hands the top of its heap back to the OS once enough of it is free (M_TRIM_THRESHOLD, adjusted
as the process runs), and serves large blocks by mmap. A training step of the seed's CNN frees and allocates
5 MB tensors; whether the top of the heap is trimmed in between, so that the next step's tensors are fresh pages
that fault in and are zeroed by the kernel (~2,300 page faults, ~2 ms per step here), depends on the heap's
history in the process: which implementation ran first, what it allocated. That is the allocator, not the
convolution, and it lands on whichever implementation it happens to hit. Pinned, no implementation pays it: the
figures compare the convolutions. Blocks of 32 MiB or more (glibc's highest mmap threshold) would be fresh
mappings on every call whatever the threshold: a 3->32 stem's 51 MB output at batch 32 faulted ~12,500 pages a call,
and a 1x1 expansion's 38 MB output at batch 8 took 16 ms in torch's conv2d against 3.9 ms from the heap. Without
mmap every block comes from the heap, which keeps what is freed. (PyTorch's CPU tuning guide reaches the same end
with jemalloc or tcmalloc.)
"""
import ctypes
import ctypes.util

# From glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
TRIM_THRESHOLD_BYTES = 1 << 30


def pin_glibc_heap() -> bool:
    """Sets glibc's trim threshold to 1 GiB and its count of mmap'd blocks to 0 for this process. Returns whether
    both took (False where the C library is not glibc)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)) and bool(mallopt(M_MMAP_MAX, 0))
