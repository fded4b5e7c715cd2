// The fast CPU path (tiled_conv2d.cpp): per-sample tiles of output rows, no output permutes.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <optional>
#include <tuple>

#include "../im2col.h"

namespace conv_ext::cpu {

at::Tensor conv2d_forward_tiled(const at::Tensor& input, const at::Tensor& weight,
                                const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups);

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_backward_tiled(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, std::array<bool, 3> output_mask);

// Depthwise convolution (groups == in_channels, float32/float64) without columns (depthwise_conv2d.cpp):
// contiguous tensors; the backward fills the defined ones of grad_input and grad_weight.
bool use_depthwise_path(const at::Tensor& input, const at::Tensor& weight, int64_t groups);
at::Tensor conv2d_forward_depthwise(const at::Tensor& input, const at::Tensor& weight,
                                    const std::optional<at::Tensor>& bias, const ConvGeometry& geometry);
void conv2d_backward_depthwise(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                               const ConvGeometry& geometry, const at::Tensor& grad_input,
                               const at::Tensor& grad_weight);

}  // namespace conv_ext::cpu
