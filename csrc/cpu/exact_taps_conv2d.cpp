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
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <vector>

#include "column_rows.h"
#include "gemm.h"
#include "tiled_conv2d.h"

namespace conv_ext::cpu {

namespace {

// The implicit GEMM's multiply-adds per input channel and output channel (its lanes x the taps it does not skip,
// as if no whole panel skipped a tap), and the exact count (the taps inside the image, summed over the outputs).
struct TapCounts {
  int64_t implicit, exact;
};

TapCounts tap_counts(const ConvGeometry& g) {
  auto axis_taps = [](int64_t outputs, int64_t stride, int64_t pad, int64_t length, int64_t dilation,
                      int64_t kernel) {
    int64_t taps = 0;
    for (int64_t o = 0; o < outputs; ++o) {
      const ValidRange t = valid_taps(o * stride - pad, length, dilation, kernel);
      taps += t.end - t.begin;
    }
    return taps;
  };
  return {implicit_conv2d_lanes(g) * g.kernel_h * g.kernel_w,
          axis_taps(g.out_h, g.stride_h, g.pad_h, g.height, g.dilation_h, g.kernel_h) *
              axis_taps(g.out_w, g.stride_w, g.pad_w, g.width, g.dilation_w, g.kernel_w)};
}

}  // namespace

bool use_exact_taps_conv2d(const at::Tensor& input, const ConvGeometry& g, int64_t group_out) {
  if (!output_channel_lanes_apply(input, group_out)) return false;
  // Where the implicit GEMM would spend over 15% of its multiply-adds on the padding and on idle lanes
  // (seed-conv2: 21%, forward 2.7 -> 2.4 ms on 2 threads); below that its denser inner loop wins (resnet-3x3: 2%).
  const TapCounts counts = tap_counts(g);
  return 100 * counts.exact < 85 * counts.implicit;
}

}  // namespace conv_ext::cpu

#if CONV_EXT_X86_SIMD
#define CONV_EXT_SIMD_BODY "exact_taps_conv2d_simd.inc"
#include "simd_for_each_isa.h"

namespace conv_ext::cpu {

void exact_taps_conv2d_simd(const float* input, const float* weight, const float* bias, float* output,
                            const ConvGeometry& g, int64_t groups, int64_t out_channels) {
  for_simd_isa(avx512::exact_taps_conv2d, avx2::exact_taps_conv2d)(input, weight, bias, output, g, groups,
                                                                   out_channels);
}

}  // namespace conv_ext::cpu

#else  // not x86-64 with GCC/Clang: use_exact_taps_conv2d() is false (simd_gemm_enabled() is)

namespace conv_ext::cpu {

void exact_taps_conv2d_simd(const float*, const float*, const float*, float*, const ConvGeometry&, int64_t,
                            int64_t) {
  TORCH_CHECK(false, "conv_ext: the SIMD exact-taps convolution is not built for this CPU");
}

}  // namespace conv_ext::cpu

#endif
