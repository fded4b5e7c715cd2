// Depthwise convolutions on channels_last memory (nhwc_depthwise.cpp): the channels in the vector lanes, float32 on
// our SIMD layer, one output channel per input channel (groups = in_channels = out_channels), any stride, padding
// and dilation. Forward, dx and dw read and write the (N, H, W, C) memory as it is.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <utility>

#include "textbook/im2col.h"

namespace conv_ext::cpu {

// Where the forward's sliding block runs (nhwc_depthwise_simd.inc): KW <= 7, whose weights, PIXELS sums and an
// input vector fit the registers (AVX2's 16 hold them for 8 pixels of one 8-lane half of the channels at a time);
// stride 1 or 2 (at stride 2 a load feeds half as many pixels). On AVX2 against the block without sliding (AMD EPYC
// Zen 4, 2 threads, x torch's time, mean over the networks' depthwise layers at batch 1 / 8 / 32): channels_last
// 0.92 against 1.80 (MobileNetV2's 144 channels on 56x56 at batch 8 1.00 against 3.35, ConvNeXt's 384 7x7 on 14x14
// 0.87 against 1.91); contiguous, where the table takes it, 1.11 against 1.36 (ConvNeXt's 7x7 on 14x14 at batch 8
// 1.51 against 2.07, EfficientNet's 5x5 stride 2 on 56x56 0.91 against 1.76). Against
// the block without sliding (x torch's time, AVX-512, Intel Xeon, 2 threads, forward): EfficientNet's 5x5 stride 2
// on 144 channels at 56x56, batch 8, 0.92 against 1.21; the 3x3 stride-2 layers of MobileNetV2 and EfficientNet,
// channels_last at batch 1 / 8 / 32, once the 3-wide rows walked the pixels outer with prefetches: 96 channels on
// 112x112 1.02 / 1.33 / 1.18 against 0.91 / 1.08 / 1.08, 144 on 56x56 1.05 / 1.21 against 0.94 / 1.03 (batch 8 /
// 32), 240 on 28x28 0.87 / 1.04 against 0.83 / 0.95, 192 on 28x28 0.82 / 1.03 against 0.90 / 1.05 (the one loss);
// contiguous by blocks of 16 channels, 576 on 14x14 0.54 / 0.92 / 1.06 against 0.34 / 0.50 / 0.59.
inline bool depthwise_slides(const ConvGeometry& g) {
  return g.dilation_w == 1 && (g.kernel_w == 3 || g.kernel_w == 5 || g.kernel_w == 7) &&
         (g.stride_w == 1 || g.stride_w == 2);
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
