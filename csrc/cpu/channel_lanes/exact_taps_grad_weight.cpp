// The weight gradient in float32 with AVX-512 or AVX2 over the taps inside the image only, with the output channels in
// the vector lanes:
//
//   dw^T[(c, i, j)][o] = sum over samples n and the outputs (oh, ow) whose window puts tap (i, j) inside the image
//                        of x[n][c][oh*s_h - p_h + i*d_h][ow*s_w - p_w + j*d_w] * dy^T[n][oh, ow][o]
//
// A register block is kRows input channels at one tap (i, j) x kCols output channels (AVX-512: 8 x 32, AVX2: 6 x 16):
// its rows share the tap, and so the rectangle of outputs whose window puts it inside the image (valid_outputs). The
// sum runs over exactly that rectangle, reading the input in place: no padded copy, no masks, and no multiply-add on
// the padding (the implicit GEMM's dot products along the outputs spend seed-conv2's 16% of padding taps in their
// lanes). dy is transposed to [q][o] per pass of ~1 MiB of samples (or of output rows), which every block sums over.
// Each dw element has one writer, and its sum runs in the same order whatever the thread count.
#include "cpu/channel_lanes/channel_lanes.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "cpu/valid_range.h"

#define CONV_EXT_SIMD_BODY "cpu/channel_lanes/exact_taps_grad_weight_simd.inc"
#include "cpu/simd/simd_for_each_isa.h"

namespace conv_ext::cpu {

void exact_taps_grad_weight_simd(const float* grad_output, const float* input, float* grad_weight,
                                 const ConvGeometry& g, int64_t groups, int64_t out_channels) {
  CONV_EXT_SIMD_KERNEL(exact_taps_grad_weight)(grad_output, input, grad_weight, g, groups, out_channels);
}

}  // namespace conv_ext::cpu
