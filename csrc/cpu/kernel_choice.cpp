// Which CPU kernel runs each pass of a convolution: the one place for the rules that the ops follow (and that
// tests read back through conv_ext._C._cpu_kernels).
#include "gemm.h"
#include "tiled_conv2d.h"

namespace conv_ext::cpu {

const char* kernel_name(CpuKernel kernel) {
  switch (kernel) {
    case CpuKernel::padded: return "padded";
    case CpuKernel::exact_taps: return "exact_taps";
    case CpuKernel::implicit: return "implicit";
    case CpuKernel::phased: return "phased";
    case CpuKernel::depthwise: return "depthwise";
    case CpuKernel::depthwise_simd: return "depthwise_simd";
    case CpuKernel::tiled: return "tiled";
  }
  return "?";
}

bool output_channel_lanes_apply(const at::Tensor& input, int64_t group_out) {
  // Below 16 output channels per group most of each vector's lanes would be idle.
  return input.scalar_type() == at::kFloat && simd_gemm_enabled() && group_out >= 16;
}

CpuKernels choose_cpu_kernels(const at::Tensor& input, const at::Tensor& weight, const ConvGeometry& g,
                              int64_t groups) {
  const int64_t out_channels = weight.size(0), group_out = out_channels / groups;
  const CpuKernel fallback = use_depthwise_path(input, weight, groups) ? CpuKernel::depthwise : CpuKernel::tiled;
  CpuKernels kernels{fallback, fallback, fallback};
  // On AVX2 a register block holds a quarter of AVX-512's sums (6 x 16), and where a group has 64 output channels
  // or more the tiled path's im2col + ATen's GEMM (MKL) measured faster in every pass on a Zen 3 (resnet-3x3,
  // vgg-like, pointwise: e.g. vgg-like's forward 17.2 against 21.9 ms); below that (fewer channels, groups,
  // padding) the column-free kernels win.
  if (simd_isa() == SimdIsa::avx2 && group_out >= 64) return kernels;
  const bool implicit = use_implicit_conv2d(input, g);
  // Depthwise: one row per group, a 1 x 16 block in the implicit GEMM; the depthwise kernel keeps rows of the
  // plane in registers (the depthwise suite shape on a Zen 3, AVX2: forward 0.54 against 1.23-1.40 ms on the
  // implicit GEMM, dx 0.59 against 1.14-1.49; separate runs of the same session).
  const bool depthwise_simd = use_depthwise_simd(input, weight, g, groups);
  kernels.forward = use_padded_conv2d(input, g, group_out)       ? CpuKernel::padded
                    : use_exact_taps_conv2d(input, g, group_out) ? CpuKernel::exact_taps
                    : depthwise_simd                             ? CpuKernel::depthwise_simd
                    : implicit                                   ? CpuKernel::implicit
                                                                 : fallback;
  // dx, stride 1: the convolution of dy that dx is, where the implicit GEMM takes it (run by the exact-taps
  // forward where that one would take it); stride > 1: by phases.
  const ConvGeometry dx_as_conv2d = transposed_geometry(g, out_channels);
  if (depthwise_simd && g.stride_h == 1 && g.stride_w == 1 && group_out == 1) {
    kernels.grad_input = CpuKernel::depthwise_simd;  // dx is the depthwise convolution of dy
  } else if (implicit && g.stride_h == 1 && g.stride_w == 1 && use_implicit_conv2d(input, dx_as_conv2d)) {
    kernels.grad_input = use_exact_taps_conv2d(input, dx_as_conv2d, g.channels / groups) ? CpuKernel::exact_taps
                                                                                         : CpuKernel::implicit;
  } else if (use_phased_grad_input(input, g, out_channels)) {
    kernels.grad_input = CpuKernel::phased;
  }
  // dw: the exact-taps dw measured faster than the implicit one on every suite shape with 8 input channels per
  // group or more; below that its register blocks are short (seed-conv1, one input channel: one sum in registers,
  // 1.7 ms against the implicit dw's 0.45), and the implicit dw takes it where it can (stride_w 1).
  const bool implicit_weight = implicit && g.stride_w == 1;
  const bool exact_taps_weight =
      use_exact_taps_grad_weight(input, group_out) && (g.channels / groups >= 8 || !implicit_weight);
  // A pointwise dw (1x1, stride 1, no padding) is a GEMM over the input itself, which the tiled path runs without
  // columns: faster there than on the exact-taps dw (the pointwise suite shape, AVX-512 on an Intel Xeon with
  // AMX, 2 threads: 1.51 against 1.83 ms).
  kernels.grad_weight = exact_taps_weight ? (is_pointwise(g) ? CpuKernel::tiled : CpuKernel::exact_taps)
                        : implicit_weight ? CpuKernel::implicit
                                          : fallback;
  return kernels;
}

}  // namespace conv_ext::cpu
