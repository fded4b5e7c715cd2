// Depthwise convolutions on channels_last memory (nhwc_depthwise.cpp): the channels in the vector lanes, float32 on
// our SIMD layer, one output channel per input channel (groups = in_channels = out_channels), any stride, padding
// and dilation. Forward, dx and dw read and write the (N, H, W, C) memory as it is.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <utility>

#include "textbook/im2col.h"

namespace conv_ext::cpu {

// The forward: returns the output in channels_last.
at::Tensor nhwc_depthwise_conv2d(const at::Tensor& input, const at::Tensor& weight,
                                 const std::optional<at::Tensor>& bias, const ConvGeometry& geometry);

// dx and/or dw (channels_last results; an output not asked for is a placeholder).
std::pair<at::Tensor, at::Tensor> nhwc_depthwise_conv2d_backward(const at::Tensor& grad_output,
                                                                 const at::Tensor& input, const at::Tensor& weight,
                                                                 const ConvGeometry& geometry, bool need_input,
                                                                 bool need_weight);

}  // namespace conv_ext::cpu
