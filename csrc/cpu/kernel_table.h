// Which CPU kernel runs each pass of a convolution (kernel_table.cpp): one ordered list per pass (forward, dx, dw);
// the first kernel whose rule accepts the problem runs. The CPU ops (conv2d_cpu.cpp) ask it, and conv_ext.explain()
// reads its answers (and the rules behind them) through conv_ext._C._cpu_kernels.
#pragma once

#include <c10/core/ScalarType.h>

#include <cstdint>

#include "textbook/im2col.h"

namespace conv_ext::cpu {

// The kernel families (folders of cpu/). phased runs dx only (grad_input/); the others run the forward, and where
// the table says so dx (as a convolution of dy) or dw.
enum class CpuKernel { padded, exact_taps, implicit, phased, depthwise, depthwise_simd, tiled };
struct CpuKernels {
  CpuKernel forward, grad_input, grad_weight;
};

// The kernels for a convolution of `dtype` with this geometry, groups and out_channels (arguments checked).
CpuKernels choose_cpu_kernels(at::ScalarType dtype, const ConvGeometry& geometry, int64_t groups,
                              int64_t out_channels);
// The same choice with the reason for each: the rule, in words, of the table entry that accepted the problem.
struct KernelChoice {
  CpuKernel kernel;
  const char* rule;
};
struct CpuKernelChoices {
  KernelChoice forward, grad_input, grad_weight;
};
CpuKernelChoices explain_cpu_kernels(at::ScalarType dtype, const ConvGeometry& geometry, int64_t groups,
                                     int64_t out_channels);
const char* kernel_name(CpuKernel kernel);

}  // namespace conv_ext::cpu
