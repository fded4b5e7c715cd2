// The forward in float32 with AVX-512 or AVX2 over the taps inside the image only: no multiply-add reads the padding.
//
// The implicit GEMM keeps output positions in the vector lanes, so a tap that lies in the padding for some lanes
// of a vector costs the whole vector (seed-conv2, 14 x 14 with a 5 x 5 kernel and padding 2: 16% of the taps
// are in the padding, and 208 lanes cover 196 positions). Here the lanes are output channels and the rows of the
// register block are 8 samples at one output position (oh, ow): every row shares the position's window, so the
// sum runs over exactly the taps (i, j) of that window that lie inside the image (no padding, no masks):
//
//   out^T[n][oh, ow][o] = sum over valid (i, j), then c, of x[n][c][oh*s_h - p_h + i*d_h][ow*s_w - p_w + j*d_w]
//                                                              * W^T[(i, j), c][o]     (pack_weight_tap_major)
//
// A task is a block of up to 8 samples (a thread's samples of one group and band, cut into blocks of near-equal
// size) x a band of output rows of one group. It first interleaves the input rows of the band's windows for its
// samples, [h][w][c][sample], so that the 8 broadcasts of a step read 32 contiguous bytes (read in place, 8
// samples are 8 cache lines a step apart, and where a plane is 4 KiB they all map to one L1 set); then, row by
// row, computes out^T of the row and transposes it into the NCHW output with the bias.
#include "cpu/channel_lanes/channel_lanes.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "cpu/tap_major_weight.h"
#include "cpu/valid_range.h"

#define CONV_EXT_SIMD_BODY "cpu/channel_lanes/exact_taps_conv2d_simd.inc"
#include "cpu/simd/simd_for_each_isa.h"

namespace conv_ext::cpu {

void exact_taps_conv2d_simd(const float* input, const float* weight, const float* bias, float* output,
                            const ConvGeometry& g, int64_t groups, int64_t out_channels) {
  CONV_EXT_SIMD_KERNEL(exact_taps_conv2d)(input, weight, bias, output, g, groups, out_channels);
}

}  // namespace conv_ext::cpu
