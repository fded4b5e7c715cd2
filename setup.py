"""Builds conv_ext._C from csrc/ against the torch that is already installed (use --no-build-isolation).

Every .cpp under csrc/ but csrc/cuda/ always; the CUDA sources (the .cpp and .cu files under csrc/cuda/) when torch
was built with CUDA and nvcc is found (CUDA_HOME), or when FORCE_CUDA=1. TORCH_CUDA_ARCH_LIST picks the GPU
architectures, as torch does. Includes name their files from csrc/ (e.g. "cpu/kernel_table.h").
"""
import glob
import inspect
import os
import sys

from setuptools import setup

try:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension, include_paths
except ImportError as error:  # pragma: no cover - only without torch
    raise SystemExit(
        "conv_ext needs PyTorch installed before it is built: `pip install torch`, then "
        "`pip install --no-build-isolation .` (build isolation would fetch a different torch)."
    ) from error

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(HERE, "csrc")


def want_cuda() -> bool:
    """CUDA build when forced, or when this torch has CUDA and a CUDA toolkit (nvcc) is found."""
    if os.environ.get("FORCE_CUDA", "0") == "1":
        return True
    return torch.version.cuda is not None and CUDA_HOME is not None


def sources(pattern: str) -> list:
    """The files under csrc/ that match `pattern` (recursive with **), relative to the repository."""
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(CSRC, pattern), recursive=True))


def cpu_sources() -> list:
    """Every .cpp under csrc/ but the CUDA host code under csrc/cuda/ (it needs the CUDA headers)."""
    cuda = set(sources("cuda/**/*.cpp"))
    return [path for path in sources("**/*.cpp") if path not in cuda]


def system_include_flags(cuda: bool) -> list:
    """torch's (and the CUDA toolkit's) include directories as -isystem flags. setuptools passes them as -I, so
    -Wextra -Werror would fail on warnings inside torch's headers; a directory given with both -I and -isystem
    is searched as a system directory (no warnings), so only our own files are held to -Werror."""
    if "device_type" in inspect.signature(include_paths).parameters:  # torch >= 2.6
        paths = include_paths("cuda" if cuda else "cpu")
    else:
        paths = include_paths(cuda=cuda)
    return [flag for path in paths for flag in ("-isystem", path)]


def openmp_flags() -> list:
    """at::parallel_for is a header template: our own parallel loops are parallel only when this file is compiled
    with OpenMP, as torch's CPU build is (torch ships the libgomp it links)."""
    return ["-fopenmp"] if sys.platform.startswith("linux") and torch.backends.openmp.is_available() else []


def make_extension():
    # The C++ standard is torch's choice (C++20 for recent releases); our code is C++17.
    cxx_flags = ["-O3"] + openmp_flags()
    # Our own files compile warning-free; CONV_EXT_WERROR=1 (the CI compile checks) makes that a rule.
    strict = os.environ.get("CONV_EXT_WERROR") == "1"
    # GCC 13 at -O3 reports -Warray-bounds inside torch's own torch::autograd::Function::apply (a vector<bool>
    # reserve in custom_function.h, inlined into csrc/ops/conv2d_autograd.cpp; seen on a GPU machine): a false
    # positive in code that is not ours, so it stays a warning there.
    werror = ["-Wall", "-Wextra", "-Werror", "-Wno-error=array-bounds"] if strict else ["-Wall"]
    cpp_sources = cpu_sources()
    if want_cuda():
        print("conv_ext: building with CUDA (csrc/cuda/)")
        system_includes = system_include_flags(cuda=True)
        nvcc_flags = ["-O3"] + system_includes
        if strict:  # nvcc's own warnings and the host compiler's, in our .cu files
            nvcc_flags += ["-Werror=all-warnings", "-Xcompiler", "-Wall,-Wextra,-Werror"]
        return CUDAExtension(
            "conv_ext._C",
            # .cpp files under cuda/ are host code that needs the CUDA headers: CUDA build only.
            cpp_sources + sources("cuda/**/*.cpp") + sources("cuda/**/*.cu"),
            include_dirs=[CSRC],
            define_macros=[("CONV_EXT_WITH_CUDA", None)],
            extra_compile_args={"cxx": cxx_flags + system_includes + werror, "nvcc": nvcc_flags},
            extra_link_args=openmp_flags(),
        )
    print("conv_ext: building CPU-only (no CUDA torch + nvcc found; FORCE_CUDA=1 forces a CUDA build)")
    return CppExtension(
        "conv_ext._C", cpp_sources,
        include_dirs=[CSRC],
        extra_compile_args={"cxx": cxx_flags + system_include_flags(cuda=False) + werror},
        extra_link_args=openmp_flags())


setup(
    ext_modules=[make_extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
