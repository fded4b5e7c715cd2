// Calls of the registered ops through the dispatcher, from C++: the forward op's autograd calls them below
// itself, and the Python module binds the forward (conv_ext._C.conv2d) for eager calls that skip torch.ops'
// boxed argument parsing.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <optional>
#include <tuple>

namespace conv_ext {

at::Tensor conv2d_op(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                     at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups);

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_backward_op(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, std::array<bool, 3> output_mask);

}  // namespace conv_ext
