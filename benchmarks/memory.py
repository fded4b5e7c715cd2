"""Memory measurements: bytes saved for backward, and peak CUDA memory of one forward+backward."""
from typing import Callable

import torch


def saved_for_backward_bytes(forward: Callable[[], torch.Tensor]) -> int:
    """Bytes of the distinct tensors that autograd keeps from forward() for the backward pass."""
    storages = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        forward()
    return sum(storages.values())


def cuda_peak_bytes(step: Callable[[], object]) -> int:
    """Peak CUDA memory allocated during step(), above what was allocated before it."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before
