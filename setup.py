"""Builds conv_ext._C from csrc/ against the torch that is already installed (use --no-build-isolation).

CPU sources always; the CUDA sources (csrc/cuda/*.cu) when torch was built with CUDA and nvcc is found
(CUDA_HOME), or when FORCE_CUDA=1. TORCH_CUDA_ARCH_LIST picks the GPU architectures, as torch does.
"""
import glob
import os

from setuptools import setup

try:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
except ImportError as error:  # pragma: no cover - only without torch
    raise SystemExit(
        "conv_ext needs PyTorch installed before it is built: `pip install torch`, then "
        "`pip install --no-build-isolation .` (build isolation would fetch a different torch)."
    ) from error

HERE = os.path.dirname(os.path.abspath(__file__))


def want_cuda() -> bool:
    """CUDA build when forced, or when this torch has CUDA and a CUDA toolkit (nvcc) is found."""
    if os.environ.get("FORCE_CUDA", "0") == "1":
        return True
    return torch.version.cuda is not None and CUDA_HOME is not None


def sources(pattern: str) -> list:
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, "csrc", pattern)))


def make_extension():
    cxx_flags = ["-O3"]  # the C++ standard is torch's choice (C++20 for recent releases); our code is C++17
    # Our own files compile warning-free; CONV_EXT_WERROR=1 (the CI compile checks) makes that a rule.
    werror = ["-Wall", "-Wextra", "-Werror"] if os.environ.get("CONV_EXT_WERROR") == "1" else ["-Wall"]
    cpp_sources = sources("*.cpp") + sources("cpu/*.cpp")
    if want_cuda():
        print("conv_ext: building with CUDA (csrc/cuda/*.cu)")
        nvcc_flags = ["-O3"]
        if os.environ.get("CONV_EXT_WERROR") == "1":
            nvcc_flags += ["-Werror=all-warnings", "-Xcompiler", "-Wall,-Werror"]
        return CUDAExtension(
            "conv_ext._C",
            cpp_sources + sources("cuda/*.cu"),
            define_macros=[("CONV_EXT_WITH_CUDA", None)],
            extra_compile_args={"cxx": cxx_flags + werror, "nvcc": nvcc_flags},
        )
    print("conv_ext: building CPU-only (no CUDA torch + nvcc found; FORCE_CUDA=1 forces a CUDA build)")
    return CppExtension("conv_ext._C", cpp_sources, extra_compile_args={"cxx": cxx_flags + werror})


setup(
    ext_modules=[make_extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
