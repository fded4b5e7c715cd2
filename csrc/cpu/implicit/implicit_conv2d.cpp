// Implicit-GEMM convolution in float32 with AVX-512 or AVX2: the GEMM of im2col without the columns.
//
// Column row (c, i, j) at output position (oh, ow) reads plane_c[(oh*s_h - p_h + i*d_h)*W + ow*s_w - p_w + j*d_w].
// Along an output row, that is a run of the input row with step s_w, shifted by the constant
//   offset(c, i, j) = c*H*W + (i*d_h - p_h)*W + (j*d_w - p_w)
// from the position's own origin oh*s_h*W + ow*s_w. The micro-kernel loads those runs straight from the input,
// 16 outputs per vector (step 1: one masked load; step 2: two masked loads and a permute that keeps the even
// lanes), with a lane mask per block of outputs ("panel") and per tap: the lanes whose tap lies inside the image
// read it, the others read zero. The forward sums tap by tap (TapRows), channels innermost: a tap's shift and
// mask are set once for all its channels, and a tap that lies outside the image for the whole panel is skipped.
//
// Panels: with stride 1 and Wo == W ('same' padding in width), consecutive output positions q = oh*W + ow have
// consecutive origins, across output rows too, so a panel is any kCols consecutive positions ("flat" panels, no
// waste at row ends). Otherwise a panel is up to kCols outputs of one output row. (kCols: 32 on AVX-512, two
// vectors; 16 on AVX2, where a register block holds one vector per row.)
#include "cpu/implicit/implicit_conv2d.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "cpu/tap_major_weight.h"

// The kernels themselves (the column index tables, the forward panels and the dw blocks), once per instruction set.
#define CONV_EXT_SIMD_BODY "cpu/implicit/implicit_conv2d_simd.inc"
#include "cpu/simd/simd_for_each_isa.h"

namespace conv_ext::cpu {

void implicit_conv2d_simd(const float* input, const float* weight, const float* bias, float* output,
                          const ConvGeometry& g, int64_t groups, int64_t out_channels) {
  CONV_EXT_SIMD_KERNEL(implicit_conv2d)(input, weight, bias, output, g, groups, out_channels);
}

void implicit_conv2d_grad_weight_simd(const float* grad_output, const float* input, float* grad_weight,
                                      const ConvGeometry& g, int64_t groups, int64_t out_channels) {
  CONV_EXT_SIMD_KERNEL(implicit_conv2d_grad_weight)(grad_output, input, grad_weight, g, groups, out_channels);
}

}  // namespace conv_ext::cpu
