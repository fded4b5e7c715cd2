// Depthwise convolutions on channels_last memory (nhwc_depthwise.cpp): the channels in the vector lanes, float32 on
// our SIMD layer, one output channel per input channel (groups = in_channels = out_channels), any stride, padding
// and dilation. Forward, dx and dw read and write the (N, H, W, C) memory as it is.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <utility>

#include "textbook/im2col.h"

namespace conv_ext::cpu {

// Where the forward's sliding block runs (AVX-512; nhwc_depthwise_simd.inc): its KW weights, PIXELS sums and an
// input vector fit 32 registers for KW <= 7. At stride 2 a load feeds half as many pixels: the kernels 5 and 7 wide
// only (MobileNetV2's and EfficientNet's 5x5 stride 2 on 144 channels at 56x56, batch 8: 0.92x torch's time against
// 1.21x; their 3x3 ones were level).
inline bool depthwise_slides(const ConvGeometry& g) {
  return g.dilation_w == 1 && (g.kernel_w == 3 || g.kernel_w == 5 || g.kernel_w == 7) &&
         (g.stride_w == 1 || (g.stride_w == 2 && g.kernel_w >= 5));
}

// The forward: returns the output in channels_last, or for an NCHW input where the sliding block runs, contiguous
// (read by blocks of 16 channels, no layout change).
at::Tensor nhwc_depthwise_conv2d(const at::Tensor& input, const at::Tensor& weight,
                                 const std::optional<at::Tensor>& bias, const ConvGeometry& geometry);

// dx and/or dw (channels_last results; an output not asked for is a placeholder).
std::pair<at::Tensor, at::Tensor> nhwc_depthwise_conv2d_backward(const at::Tensor& grad_output,
                                                                 const at::Tensor& input, const at::Tensor& weight,
                                                                 const ConvGeometry& geometry, bool need_input,
                                                                 bool need_weight);

}  // namespace conv_ext::cpu
