// The tiled path (tiled_conv2d.cpp): im2col in cache-sized tiles and GEMMs (gemm.h), for every dtype and problem.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <utility>

#include "textbook/im2col.h"

namespace conv_ext::cpu {

// 1x1, stride 1, no padding: the input is its own columns (the tiled path's GEMMs read it in place).
inline bool is_pointwise(const ConvGeometry& g) {
  return g.kernel_h == 1 && g.kernel_w == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
}

// The forward: contiguous (N, C, H, W) input and (O, C/g, kh, kw) weight, contiguous bias or none; returns the
// (N, O, Ho, Wo) output.
at::Tensor tiled_conv2d(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                        const ConvGeometry& geometry, int64_t groups);

// dx and/or dw (contiguous operands) in one walk over the tiles; an output not asked for is a placeholder.
std::pair<at::Tensor, at::Tensor> tiled_conv2d_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                                        const at::Tensor& weight, const ConvGeometry& geometry,
                                                        int64_t groups, bool need_input, bool need_weight);

}  // namespace conv_ext::cpu
