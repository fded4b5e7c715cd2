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
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <vector>

#include "gemm.h"
#include "tiled_conv2d.h"

namespace conv_ext::cpu {

bool use_padded_conv2d(const at::Tensor& input, const ConvGeometry& g, int64_t group_out) {
  // With stride_w 1 the implicit GEMM forward measured faster on every suite shape.
  return output_channel_lanes_apply(input, group_out) && g.stride_w != 1;
}

namespace {

// The padded planes: the input itself when there is no padding.
struct PaddedLayout {
  int64_t height, width, plane, sample;  // Hp, Wp, Hp*Wp, C*Hp*Wp
  bool copy;
  explicit PaddedLayout(const ConvGeometry& g)
      : height(g.height + 2 * g.pad_h),
        width(g.width + 2 * g.pad_w),
        plane(height * width),
        sample(g.channels * plane),
        copy(g.pad_h != 0 || g.pad_w != 0) {}

  // Where tap i*kw + j of an output's window lies in the padded plane, from the output's origin.
  int64_t tap_offset(const ConvGeometry& g, int64_t tap) const {
    return tap / g.kernel_w * g.dilation_h * width + tap % g.kernel_w * g.dilation_w;
  }
};

// Plane c of sample n of the input, padded, into `to` (layout.plane floats).
void pad_plane(const float* input, const ConvGeometry& g, const PaddedLayout& layout, int64_t n, int64_t c,
               float* to) {
  const float* from = input + (n * g.channels + c) * g.height * g.width;
  std::fill(to, to + layout.plane, 0.0f);
  for (int64_t h = 0; h < g.height; ++h) {
    std::copy(from + h * g.width, from + (h + 1) * g.width, to + (h + g.pad_h) * layout.width + g.pad_w);
  }
}

}  // namespace

}  // namespace conv_ext::cpu


#if CONV_EXT_X86_SIMD
#define CONV_EXT_SIMD_BODY "padded_conv2d_simd.inc"
#include "simd_for_each_isa.h"

namespace conv_ext::cpu {

void padded_conv2d_simd(const float* input, const float* weight, const float* bias, float* output,
                        const ConvGeometry& g, int64_t groups, int64_t out_channels) {
  for_simd_isa(avx512::padded_conv2d, avx2::padded_conv2d)(input, weight, bias, output, g, groups, out_channels);
}

}  // namespace conv_ext::cpu

#else  // not x86-64 with GCC/Clang: use_padded_conv2d() is false (simd_gemm_enabled() is)

namespace conv_ext::cpu {

void padded_conv2d_simd(const float*, const float*, const float*, float*, const ConvGeometry&, int64_t, int64_t) {
  TORCH_CHECK(false, "conv_ext: the SIMD padded convolution is not built for this CPU");
}

}  // namespace conv_ext::cpu

#endif
