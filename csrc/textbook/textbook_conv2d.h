// The textbook path: im2col + GEMM + col2im in chunks of the batch, device-agnostic (textbook_conv2d.cpp), on the
// column kernels a device provides: the per-element bodies of im2col.h as host loops (host_reference_kernels.cpp)
// or as CUDA kernels (cuda/column_kernels.cu).
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <optional>
#include <tuple>

#include "textbook/im2col.h"

namespace conv_ext {

// The two column kernels a device provides; everything else (chunks, GEMMs, bias, groups) is shared.
//   im2col: input chunk (n, C, H, W) contiguous -> columns (C*kh*kw, n*Ho*Wo), written in full.
//   col2im: columns of the same shape -> grad_input chunk (n, C, H, W), written in full (not accumulated).
struct ColumnKernels {
  void (*im2col)(const at::Tensor& input, const at::Tensor& columns, const ConvGeometry& geometry);
  void (*col2im)(const at::Tensor& columns, const at::Tensor& grad_input, const ConvGeometry& geometry);
};

// The reference host loops over the per-element bodies of im2col.h: the code the GPU runs, on the CPU.
const ColumnKernels& host_reference_kernels();
#ifdef CONV_EXT_WITH_CUDA
// The CUDA column kernels: grid-stride loops over the same per-element bodies (csrc/cuda/column_kernels.cu).
const ColumnKernels& cuda_kernels();
#endif

// The textbook orchestration (textbook_conv2d.cpp): checks the arguments, then chunks of the batch, columns
// and ATen GEMMs, with the device's column kernels.
at::Tensor textbook_conv2d(
    const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
    const ColumnKernels& kernels);

std::tuple<at::Tensor, at::Tensor, at::Tensor> textbook_conv2d_backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
    std::array<bool, 3> output_mask, const ColumnKernels& kernels);

}  // namespace conv_ext
