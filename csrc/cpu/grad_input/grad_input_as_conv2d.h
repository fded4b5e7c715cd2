// dx as forward convolutions of dy on a column-free forward kernel (grad_input_as_conv2d.cpp): no column gradient,
// no col2im. float32, contiguous tensors; the whole dx written.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "textbook/im2col.h"

namespace conv_ext::cpu {

// A column-free forward (implicit_conv2d_simd, exact_taps_conv2d_simd, depthwise_conv2d_simd, ...).
using Conv2dKernel = void (*)(const float* input, const float* weight, const float* bias, float* output,
                              const ConvGeometry& geometry, int64_t groups, int64_t out_channels);

// For stride 1, dx is the convolution of dy with the weight flipped in both taps and transposed within each
// group (O/g <-> C/g), padded by d*(k-1) - p: its geometry (input dy, output dx).
ConvGeometry transposed_geometry(const ConvGeometry& geometry, int64_t out_channels);

// Stride 1: dx as that one convolution of dy, run by `conv2d` (which must take transposed_geometry).
at::Tensor grad_input_as_conv2d(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                                const ConvGeometry& geometry, int64_t groups, Conv2dKernel conv2d);

// Stride > 1, dilation 1: dx by phases, s_h * s_w stride-1 convolutions of dy, each writing its own rows and
// columns of dx. Phase (row, col) writes dx[..., row::s_h, col::s_w] as the convolution of dy with the weight's taps
// [first_tap_h::s_h, first_tap_w::s_w], flipped and transposed (as for stride 1), in `geometry`; where no tap
// reaches its pixels (not `reached`), they are zeros.
struct GradInputPhase {
  int64_t row, col;
  bool reached;
  int64_t first_tap_h, first_tap_w;
  ConvGeometry geometry;
};
// Every phase, (0, 0) first (it has the most rows and columns).
std::vector<GradInputPhase> grad_input_phases(const ConvGeometry& geometry, int64_t out_channels);
// The geometries of the phases that some tap reaches and that have pixels, which `conv2d` must all take; none where
// no tap reaches any.
std::vector<ConvGeometry> grad_input_phase_geometries(const ConvGeometry& geometry, int64_t out_channels);
at::Tensor phased_grad_input(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                             const ConvGeometry& geometry, int64_t groups, Conv2dKernel conv2d);

}  // namespace conv_ext::cpu
