// Which CPU kernel runs each pass of a convolution (kernel_table.cpp): one ordered list per pass (forward, dx, dw);
// the first kernel whose rule accepts the problem runs. The CPU ops (conv2d_cpu.cpp) ask it, and conv_ext.explain()
// reads its answers (and the rules behind them) through conv_ext._C._cpu_kernels.
#pragma once

#include <c10/core/MemoryFormat.h>
#include <c10/core/ScalarType.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "textbook/im2col.h"

namespace conv_ext::cpu {

// The kernel families (folders of cpu/). phased runs dx only (grad_input/); depthwise_nhwc, direct_nhwc (forward
// and dx) and tiled_nhwc (channels_last/) read channels_last memory as it is; the others run the forward, and where
// the table says so dx (as a convolution of dy) or dw.
enum class CpuKernel {
  padded, exact_taps, implicit, phased, depthwise, depthwise_simd, depthwise_nhwc, direct_nhwc, tiled_nhwc, tiled
};
struct CpuKernels {
  CpuKernel forward, grad_input, grad_weight;
};

// The kernels for a convolution of `dtype` with this geometry, groups and out_channels (arguments checked), whose
// tensors are in `format` (the op's memory format, conv2d_memory_format).
CpuKernels choose_cpu_kernels(at::ScalarType dtype, const ConvGeometry& geometry, int64_t groups,
                              int64_t out_channels, at::MemoryFormat format);
// The same choice with the reason for each: the rule, in words, of the table entry that accepted the problem.
struct KernelChoice {
  CpuKernel kernel;
  const char* rule;
};
struct CpuKernelChoices {
  KernelChoice forward, grad_input, grad_weight;
};
CpuKernelChoices explain_cpu_kernels(at::ScalarType dtype, const ConvGeometry& geometry, int64_t groups,
                                     int64_t out_channels, at::MemoryFormat format);
const char* kernel_name(CpuKernel kernel);

// Every kernel whose entry accepts the problem, per pass ({forward, dx, dw}), in the table's order (the choice first
// where no kernel is preferred), the tiled path (the floor) among them; for conv_ext's tests and benchmarks (_C._cpu_kernel_candidates).
std::array<std::vector<CpuKernel>, 3> cpu_kernel_candidates(at::ScalarType dtype, const ConvGeometry& geometry,
                                                            int64_t groups, int64_t out_channels,
                                                            at::MemoryFormat format);
// A kernel to run a pass (0 forward, 1 dx, 2 dw) instead of the table's choice, wherever it is a candidate;
// nullopt: the table's choice (the default). Process-wide; for tests and benchmarks (_C._prefer_cpu_kernel).
void prefer_cpu_kernel(int pass, std::optional<CpuKernel> kernel);
std::optional<CpuKernel> preferred_cpu_kernel(int pass);
std::optional<CpuKernel> cpu_kernel_named(const std::string& name);

}  // namespace conv_ext::cpu
