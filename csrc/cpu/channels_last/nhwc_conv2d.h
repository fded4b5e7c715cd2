// The tiled path on channels_last tensors (nhwc_conv2d.cpp): im2col, GEMM and col2im that read and write
// (N, H, W, C) memory as it is, so a channels_last network runs without a layout round trip at every layer.
// In that layout a column row is one output position and its taps are runs of C contiguous channels; the GEMMs
// take positions as rows: output (L, O) = columns (L, kh*kw*C) . weight^T, where the weight's (O, kh, kw, C)
// order is a channels_last weight's memory.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <utility>

#include "textbook/im2col.h"

namespace conv_ext::cpu {

// The forward: input (N, C, H, W) in channels_last memory, weight (O, C, kh, kw) in any, groups 1, float32 or
// float64; returns the output in channels_last.
at::Tensor nhwc_conv2d(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                       const ConvGeometry& geometry);

// dx and/or dw of nhwc_conv2d (grad_output and input in channels_last memory); returns channels_last gradients,
// an output not asked for a placeholder.
std::pair<at::Tensor, at::Tensor> nhwc_conv2d_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                                       const at::Tensor& weight, const ConvGeometry& geometry,
                                                       bool need_input, bool need_weight);

}  // namespace conv_ext::cpu
