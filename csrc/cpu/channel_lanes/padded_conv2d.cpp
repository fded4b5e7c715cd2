// The forward in float32 with AVX-512 or AVX2 as a GEMM with the output channels in the vector lanes, reading the
// columns as broadcasts from a zero-padded copy of the input (for stride_w > 1, where the implicit GEMM's lanes along
// the output positions would need even-lane permutes):
//
//   out^T[q][o] = sum over k of columns[k][q] * W^T[k][o],   in the order k = (tap, c) of pack_weight_tap_major
//
// for kRows output positions along a row (rows of A, s_w apart in the padded row) and kCols output channels (lanes, the
// packed weight's rows; AVX-512: 8 x 32, AVX2: 6 x 16), one output row of a sample at a time, transposed into the
// output. On the copy padded with zeros by (p_h, p_w) (planes of Hp x Wp), column row (c, i, j) at output (oh, ow) is
//   x_padded[n][c][(oh*s_h + i*d_h) * Wp + ow*s_w + j*d_w]
// so no lane masks are needed (the padding supplies the zeros), for any stride and dilation.
#include "cpu/channel_lanes/channel_lanes.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "cpu/channel_lanes/padded_layout.h"
#include "cpu/tap_major_weight.h"

#define CONV_EXT_SIMD_BODY "cpu/channel_lanes/padded_conv2d_simd.inc"
#include "cpu/simd/simd_for_each_isa.h"

namespace conv_ext::cpu {

void padded_conv2d_simd(const float* input, const float* weight, const float* bias, float* output,
                        const ConvGeometry& g, int64_t groups, int64_t out_channels) {
  CONV_EXT_SIMD_KERNEL(padded_conv2d)(input, weight, bias, output, g, groups, out_channels);
}

}  // namespace conv_ext::cpu
