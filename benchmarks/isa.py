"""One instruction set for every implementation of a run. `--simd-isa avx2` on an AVX-512 CPU stands for an AVX2
CPU: ext's kernels run their AVX2 build, and torch's own CPU kernels are held to AVX2 as well (oneDNN's
convolutions, MKL's GEMMs, which ext's tiled path calls too, and ATen's vectorized loops), as they would be on such
a CPU. Each of those libraries reads its limit from the environment once, when it starts, so the run re-executes
itself with the limits set before torch is imported."""
import os
import sys
from typing import Dict, List, Optional

# The environment that holds torch's CPU kernels to an instruction set, per --simd-isa value that needs one.
TORCH_LIMITS: Dict[str, Dict[str, str]] = {
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
}


def requested_isa(argv: List[str]) -> Optional[str]:
    """The value of --simd-isa in a command line (either spelling), or None."""
    for i, arg in enumerate(argv):
        if arg == "--simd-isa" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--simd-isa="):
            return arg.split("=", 1)[1]
    return None


def torch_limit_in_effect(isa: Optional[str]) -> bool:
    """Whether this process started with torch held to `isa` (True where `isa` needs no limit)."""
    return all(os.environ.get(name) == value for name, value in TORCH_LIMITS.get(isa or "", {}).items())


def reexec_with_torch_limit(module: str, argv: List[str]) -> None:
    """Re-executes `python -m module argv` with torch held to the instruction set of --simd-isa, unless the
    process already runs so (or the value needs no limit). Returns only in that case."""
    isa = requested_isa(argv)
    if torch_limit_in_effect(isa):
        return
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", module, *argv], {**os.environ, **TORCH_LIMITS[isa]})


def torch_isa_limit() -> Optional[str]:
    """The instruction set torch's CPU kernels are held to in this process (from its environment), or None."""
    return next((isa for isa in TORCH_LIMITS if torch_limit_in_effect(isa)), None)
