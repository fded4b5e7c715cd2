// The fast CPU path (tiled_conv2d.cpp): per-sample tiles of output rows, no output permutes.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <optional>
#include <tuple>
#include <vector>

#include "../im2col.h"

namespace conv_ext::cpu {

// The CPU kernels (kernel_choice.cpp): which one runs the forward, dx and dw of a convolution.
enum class CpuKernel { padded, exact_taps, implicit, phased, depthwise, depthwise_simd, tiled };
struct CpuKernels {
  CpuKernel forward, grad_input, grad_weight;
};
CpuKernels choose_cpu_kernels(const at::Tensor& input, const at::Tensor& weight, const ConvGeometry& geometry,
                              int64_t groups);
const char* kernel_name(CpuKernel kernel);
// The kernels with the output channels in the vector lanes (padded, exact taps): float32 with our SIMD GEMM
// and at least 16 output channels per group.
bool output_channel_lanes_apply(const at::Tensor& input, int64_t group_out);

at::Tensor conv2d_forward_tiled(const at::Tensor& input, const at::Tensor& weight,
                                const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups);

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_backward_tiled(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, std::array<bool, 3> output_mask);

// Depthwise convolution (groups == in_channels, float32/float64) without columns (depthwise_conv2d.cpp):
// contiguous tensors; the backward fills the defined ones of grad_input and grad_weight. Scalar loops: where the
// SIMD depthwise kernel or the implicit GEMM below applies, they run the pass instead.
bool use_depthwise_path(const at::Tensor& input, const at::Tensor& weight, int64_t groups);
at::Tensor conv2d_forward_depthwise(const at::Tensor& input, const at::Tensor& weight,
                                    const std::optional<at::Tensor>& bias, const ConvGeometry& geometry);
void conv2d_backward_depthwise(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                               const ConvGeometry& geometry, const at::Tensor& grad_input,
                               const at::Tensor& grad_weight);
// The depthwise forward on our SIMD vector layer (depthwise_conv2d_simd.inc): float32 where our SIMD GEMM is
// enabled, stride_w 1 or 2, any channel multiplier, padding and dilation; blocks of output rows of one plane in
// registers. Writes the whole output. For stride 1 and one output channel per group it runs dx too (as a
// convolution of dy: grad_input_as_conv2d).
bool use_depthwise_simd(const at::Tensor& input, const at::Tensor& weight, const ConvGeometry& geometry,
                        int64_t groups);
void depthwise_conv2d_simd(const float* input, const float* weight, const float* bias, float* output,
                           const ConvGeometry& geometry, int64_t groups, int64_t out_channels);

// The implicit GEMM (implicit_conv2d.cpp): float32 where our SIMD GEMM is enabled, stride_w 1 or 2,
// and either stride 1 with Wo == W or output rows that fill 3/4 of their vectors. It reads the columns straight
// from the input. Contiguous (N, C, H, W) input and (O, C/g, kh, kw) weight; writes the whole (N, O, Ho, Wo)
// output.
bool use_implicit_conv2d(const at::Tensor& input, const ConvGeometry& geometry);
// The vector lanes its panels cover in one output plane (flat panels, or whole vectors per output row).
int64_t implicit_conv2d_lanes(const ConvGeometry& geometry);
void implicit_conv2d_simd(const float* input, const float* weight, const float* bias, float* output,
                            const ConvGeometry& geometry, int64_t groups, int64_t out_channels);
// Its weight gradient, for stride_w == 1: writes the whole (O, C/g, kh, kw) grad_weight (one writer per
// element: deterministic and independent of the thread count).
void implicit_conv2d_grad_weight_simd(const float* grad_output, const float* input, float* grad_weight,
                                        const ConvGeometry& geometry, int64_t groups, int64_t out_channels);
// The forward with the output channels in the vector lanes over a zero-padded copy of the input
// (padded_conv2d.cpp): any stride, padding and dilation; used for float32 with our SIMD GEMM where
// stride_w > 1 and a group has at least 16 output channels. Writes the whole output.
bool use_padded_conv2d(const at::Tensor& input, const ConvGeometry& geometry, int64_t group_out);
void padded_conv2d_simd(const float* input, const float* weight, const float* bias, float* output,
                          const ConvGeometry& geometry, int64_t groups, int64_t out_channels);
// The forward with the output channels in the vector lanes and samples in the register rows, summing only the
// taps inside the image (exact_taps_conv2d.cpp): float32 with our SIMD GEMM, at least 16 output
// channels per group, any stride and dilation; used where padding and idle lanes would cost the implicit GEMM
// much (see use_exact_taps_conv2d). Writes the whole output.
bool use_exact_taps_conv2d(const at::Tensor& input, const ConvGeometry& geometry, int64_t group_out);
void exact_taps_conv2d_simd(const float* input, const float* weight, const float* bias, float* output,
                              const ConvGeometry& geometry, int64_t groups, int64_t out_channels);
// The weight gradient the same way (exact_taps_grad_weight.cpp): float32 with our SIMD GEMM where a
// group has at least 16 output channels, any stride, padding and dilation. Writes the whole (O, C/g, kh, kw)
// grad_weight, one writer per element (deterministic and independent of the thread count).
bool use_exact_taps_grad_weight(const at::Tensor& input, int64_t group_out);
void exact_taps_grad_weight_simd(const float* grad_output, const float* input, float* grad_weight,
                                   const ConvGeometry& geometry, int64_t groups, int64_t out_channels);
// The weight (O, C/g, kh, kw) as [group][tap][c][o]: the sums of the implicit GEMM and of the padded forward run
// tap by tap, channels inside, with the output channels of one step side by side.
std::vector<float> pack_weight_tap_major(const float* weight, int64_t groups, int64_t out_channels,
                                         int64_t group_channels, int64_t taps);
// 1x1, stride 1, no padding: the input is its own columns (the tiled path's GEMMs read it in place).
inline bool is_pointwise(const ConvGeometry& g) {
  return g.kernel_h == 1 && g.kernel_w == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
}
// For stride 1, dx is the convolution of dy with the weight flipped in both taps and transposed within each
// group (O/g <-> C/g), padded by d*(k-1) - p: its geometry (input dy, output dx).
ConvGeometry transposed_geometry(const ConvGeometry& geometry, int64_t out_channels);
// dx as convolutions of dy (grad_input_as_conv2d.cpp), the whole dx written: for stride 1 on the implicit GEMM, the
// exact-taps forward or the SIMD depthwise forward (`kernel`: CpuKernel::implicit, exact_taps or depthwise_simd),
// where that kernel takes transposed_geometry; for stride > 1 and dilation 1 by phases on the implicit GEMM, where it takes every phase
// (use_phased_grad_input).
at::Tensor grad_input_as_conv2d(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                                const ConvGeometry& geometry, int64_t groups, CpuKernel kernel);
bool use_phased_grad_input(const at::Tensor& input, const ConvGeometry& geometry, int64_t out_channels);
at::Tensor phased_grad_input(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                             const ConvGeometry& geometry, int64_t groups);

}  // namespace conv_ext::cpu
