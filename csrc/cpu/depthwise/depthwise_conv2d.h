// Depthwise convolutions (groups == in_channels, one input channel per group, any channel multiplier) without
// columns: the scalar loops (depthwise_conv2d.cpp, float32 and float64), the SIMD forward (depthwise_conv2d_simd.cpp,
// float32 on our SIMD layer, stride_w 1 or 2) and the SIMD dx and dw at stride 2 (depthwise_grad_input_simd.cpp,
// depthwise_grad_weight_simd.cpp). Contiguous tensors.
#pragma once

#include <ATen/ATen.h>

#include <optional>

#include "textbook/im2col.h"

namespace conv_ext::cpu {

// The scalar forward: returns the (N, O, Ho, Wo) output.
at::Tensor depthwise_conv2d(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                            const ConvGeometry& geometry);
// The scalar backward: fills grad_input and grad_weight, each where it is defined.
void depthwise_conv2d_backward(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                               const ConvGeometry& geometry, const at::Tensor& grad_input,
                               const at::Tensor& grad_weight);

// The SIMD forward: blocks of output rows of one plane in registers; any channel multiplier, padding and
// dilation, stride_w 1 or 2. Writes the whole output. For stride 1 and one output channel per group it runs dx
// too (as a convolution of dy: grad_input_as_conv2d.h).
void depthwise_conv2d_simd(const float* input, const float* weight, const float* bias, float* output,
                           const ConvGeometry& geometry, int64_t groups, int64_t out_channels);

// dx of a depthwise layer (one output channel per group) at stride 2 and dilation 1, any kernel and padding: even
// and odd input columns summed from runs of dy's rows and interleaved (depthwise_grad_input_simd.inc). Writes the
// whole of dx.
void depthwise_grad_input_stride2_simd(const float* grad_output, const float* weight, float* grad_input,
                                       const ConvGeometry& geometry);

// dw of a depthwise layer (one output channel per group) at stride 2, dilation 1, a kernel 3, 5 or 7 wide and up to
// 7 tall: each tap
// sums runs of dy's rows times runs of the input rows' even or odd columns (depthwise_grad_weight_simd.inc). The
// signature of the column-free dws (groups = channels, out_channels = channels).
void depthwise_grad_weight_stride2_simd(const float* grad_output, const float* input, float* grad_weight,
                                        const ConvGeometry& geometry, int64_t groups, int64_t out_channels);

}  // namespace conv_ext::cpu
