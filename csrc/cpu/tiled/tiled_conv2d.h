// The tiled path (tiled_conv2d.cpp): im2col in cache-sized tiles and GEMMs (gemm.h), for every dtype and problem.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <utility>

#include "textbook/im2col.h"

namespace conv_ext::cpu {

// The tiles of the tiled path (here and on channels_last memory, channels_last/nhwc_conv2d.cpp): a tile's columns
// aim at a core's L2 cache from im2col to the GEMM...
constexpr int64_t kTileTargetBytes = int64_t{512} << 10;
// ...unless that leaves a tile fewer output positions than this: ATen's GEMM (MKL) packs the weight on every call,
// so a call over n columns spends about 1/n of its work on packing (512->512 3x3 on 28x28 at batch 1: dx 41 ms with
// one output row per tile, 12.5 with 512 columns; the forward 17 against 12; AVX-512, Intel Xeon, 2 threads).
constexpr int64_t kMinTileColumns = 512;

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
