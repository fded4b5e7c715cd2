// The implicit GEMM (implicit_conv2d.cpp): float32 on our SIMD layer, the GEMM of im2col reading its columns
// straight from the input, output positions in the vector lanes. It runs stride_w 1 or 2 (any stride_h, padding,
// dilation and groups); the kernel table says where it is used.
#pragma once

#include <cstdint>

#include "textbook/im2col.h"

namespace conv_ext::cpu {

// Flat panels: with stride 1 and Wo == W ('same' padding in width), consecutive output positions q = oh*W + ow
// have consecutive origins, across output rows too, so a panel is any run of consecutive positions (no waste at
// row ends). Otherwise a panel is up to a register block's width of outputs of one output row.
inline bool implicit_flat_panels(const ConvGeometry& g) {
  return g.stride_h == 1 && g.stride_w == 1 && g.out_w == g.width;
}

// The vector lanes of 16 its panels cover in one output plane (flat panels, or whole vectors per output row).
inline int64_t implicit_conv2d_lanes(const ConvGeometry& g) {
  const int64_t vectors = implicit_flat_panels(g) ? (g.out_plane() + 15) / 16 : g.out_h * ((g.out_w + 15) / 16);
  return 16 * vectors;
}

// The forward: contiguous (N, C, H, W) input and (O, C/g, kh, kw) weight, bias or null; writes the whole
// (N, O, Ho, Wo) output.
void implicit_conv2d_simd(const float* input, const float* weight, const float* bias, float* output,
                          const ConvGeometry& geometry, int64_t groups, int64_t out_channels);
// Its weight gradient, for stride_w == 1: writes the whole (O, C/g, kh, kw) grad_weight (one writer per
// element: deterministic and independent of the thread count).
void implicit_conv2d_grad_weight_simd(const float* grad_output, const float* input, float* grad_weight,
                                      const ConvGeometry& geometry, int64_t groups, int64_t out_channels);

}  // namespace conv_ext::cpu
