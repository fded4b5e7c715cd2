// Declarations shared by the op registration, the device-agnostic orchestration and the device launchers.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <optional>
#include <tuple>

#include "im2col.h"

namespace conv_ext {

// Ho = floor((H + 2*p - d*(k-1) - 1) / s) + 1. Templated so that the same formula serves concrete sizes
// (int64_t) and the symbolic sizes of the Meta kernel (c10::SymInt) under torch.compile.
template <typename T>
T conv_output_length(const T& input_length, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation) {
  return (input_length + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1;
}

// Validates every argument of the forward op (shapes, hyperparameters, dtypes, devices) and returns the output
// shape (N, O, Ho, Wo), O = 0 for an input without channels (below). Throws ValueError / TypeError with a message
// naming the problem. Defined in conv2d.cpp.
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

// The geometry of a whole (contiguous) input: sizes, hyperparameters and output plane; batch = N.
ConvGeometry make_geometry(const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
                           at::IntArrayRef padding, at::IntArrayRef dilation);

// db = sum of dy over N, Ho, Wo: the bias gradient, the same for every path.
inline at::Tensor bias_gradient(const at::Tensor& grad_output) { return grad_output.sum({0, 2, 3}); }

// The placeholder for an output the backward op was not asked for: a fresh empty tensor each time (the op's
// outputs must not alias each other).
inline at::Tensor unrequested_output(const at::Tensor& like) { return at::empty({0}, like.options()); }

// The two column kernels a device provides; everything else (chunks, GEMMs, bias, groups) is shared.
//   im2col: input chunk (n, C, H, W) contiguous -> columns (C*kh*kw, n*Ho*Wo), written in full.
//   col2im: columns of the same shape -> grad_input chunk (n, C, H, W), written in full (not accumulated).
struct ColumnKernels {
  void (*im2col)(const at::Tensor& input, const at::Tensor& columns, const ConvGeometry& geometry);
  void (*col2im)(const at::Tensor& columns, const at::Tensor& grad_input, const ConvGeometry& geometry);
};

// The reference host loops over the per-element bodies of im2col.h: the code the GPU runs, on the CPU.
const ColumnKernels& host_reference_kernels();
// When set, the CPU ops run the shared orchestration with the reference host kernels instead of the fast
// CPU path (a test switch: it checks the device code and the shared orchestration without a GPU).
bool host_reference_kernels_enabled();
void set_host_reference_kernels_enabled(bool enabled);
#ifdef CONV_EXT_WITH_CUDA
// The CUDA column kernels: grid-stride loops over the same per-element bodies (csrc/cuda/column_kernels.cu).
const ColumnKernels& cuda_kernels();
#endif

// Device-agnostic orchestration (conv2d_impl.cpp).
at::Tensor conv2d_forward_impl(
    const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
    const ColumnKernels& kernels);

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_backward_impl(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
    std::array<bool, 3> output_mask, const ColumnKernels& kernels);

// The bound on the column workspace of one chunk of the batch, in bytes (default 64 MiB). A chunk never holds
// fewer than one sample, so a single sample whose columns exceed the bound still runs, alone.
int64_t workspace_limit_bytes();
void set_workspace_limit_bytes(int64_t bytes);
// The largest column workspace allocated since the last reset, in bytes (for the benchmark's memory report).
int64_t peak_workspace_bytes();
void reset_peak_workspace_bytes();
void record_workspace_bytes(int64_t bytes);

}  // namespace conv_ext
