// The op layer's contract with every device: the argument checks, the geometry of the arguments, and the results
// that need no kernel (an input without channels, the bias gradient, placeholders).
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <optional>
#include <tuple>

#include "textbook/im2col.h"

namespace conv_ext {

// Ho = floor((H + 2*p - d*(k-1) - 1) / s) + 1. Templated so that the same formula serves concrete sizes
// (int64_t) and the symbolic sizes of the Meta kernel (c10::SymInt) under torch.compile.
template <typename T>
T conv_output_length(const T& input_length, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation) {
  return (input_length + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1;
}

// Validates every argument of the forward op (shapes, hyperparameters, dtypes, devices) and returns the output
// shape (N, O, Ho, Wo), O = 0 for an input without channels (below). Throws ValueError / TypeError with a message
// naming the problem.
std::vector<c10::SymInt> check_conv2d_args(
    const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups);

// An input without channels, as torch has it (ATen's Convolution.cpp; nn.Conv2d(0, out_channels, k)): the output
// has no channels either, (N, 0, Ho, Wo), whatever weight.size(0) is (the size check_conv2d_args returns), and the
// gradients are zeros of the input's, the weight's and the bias's (out_channels) sizes. Every device's forward
// and backward return these before anything else; no kernel sees such an input.
inline bool lacks_input_channels(const at::Tensor& input) { return input.size(1) == 0; }
at::Tensor conv2d_without_input_channels(const at::Tensor& input, c10::SymIntArrayRef output_shape);
std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_backward_without_input_channels(
    const at::Tensor& input, const at::Tensor& weight, std::array<bool, 3> output_mask);

// The same checks for the backward op, plus grad_output's dtype, device and size (the forward output size).
void check_conv2d_backward_args(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups);

// The memory format of the op's results, as F.conv2d has them (ATen's convolution and convolution_backward):
// channels_last where the input or the weight is channels_last, for the output and for grad_input and grad_weight
// alike; contiguous otherwise. The kernels compute in the contiguous (N, C, H, W) layout; the devices' entry points
// lay their results out in this format (in_memory_format), and the Meta kernels allocate in it.
at::MemoryFormat conv2d_memory_format(const at::Tensor& input, const at::Tensor& weight);
at::Tensor in_memory_format(const at::Tensor& result, at::MemoryFormat format);
// The backward op's results in that format (the placeholders of gradients not asked for stay as they are).
std::tuple<at::Tensor, at::Tensor, at::Tensor> in_memory_format(std::tuple<at::Tensor, at::Tensor, at::Tensor> grads,
                                                                std::array<bool, 3> output_mask,
                                                                at::MemoryFormat format);

// The geometry of a whole (contiguous) input: sizes, hyperparameters and output plane; batch = N.
ConvGeometry make_geometry(const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
                           at::IntArrayRef padding, at::IntArrayRef dilation);

// db = sum of dy over N, Ho, Wo: the bias gradient, the same for every path.
inline at::Tensor bias_gradient(const at::Tensor& grad_output) { return grad_output.sum({0, 2, 3}); }

// The placeholder for an output the backward op was not asked for: a fresh empty tensor each time (the op's
// outputs must not alias each other).
inline at::Tensor unrequested_output(const at::Tensor& like) { return at::empty({0}, like.options()); }

}  // namespace conv_ext
