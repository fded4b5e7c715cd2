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
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <vector>

#include "gemm.h"
#include "tiled_conv2d.h"

namespace conv_ext::cpu {

namespace {

// Flat panels: consecutive output positions have consecutive origins (see above).
bool flat_panels(const ConvGeometry& g) { return g.stride_h == 1 && g.stride_w == 1 && g.out_w == g.width; }

// Whether row panels of `width` outputs fill at least 3/4 of their vectors' lanes (a threshold, not a
// measurement: below it, much of each vector's work would be wasted, and the tiled path runs instead).
bool enough_lanes(int64_t width) { return 4 * width >= 3 * 16 * ((width + 15) / 16); }

}  // namespace

int64_t implicit_conv2d_lanes(const ConvGeometry& g) {
  const int64_t vectors = flat_panels(g) ? (g.out_plane() + 15) / 16 : g.out_h * ((g.out_w + 15) / 16);
  return 16 * vectors;
}

bool use_implicit_conv2d(const at::Tensor& input, const ConvGeometry& g) {
  if (input.scalar_type() != at::kFloat || !simd_gemm_enabled() || g.stride_w > 2) return false;
  return flat_panels(g) || enough_lanes(g.out_w);
}

std::vector<float> pack_weight_tap_major(const float* weight, int64_t groups, int64_t out_channels,
                                         int64_t group_channels, int64_t taps) {
  const int64_t group_out = out_channels / groups;
  std::vector<float> packed(static_cast<size_t>(out_channels * group_channels * taps));
  for (int64_t group = 0; group < groups; ++group) {
    for (int64_t o = 0; o < group_out; ++o) {
      for (int64_t c = 0; c < group_channels; ++c) {
        for (int64_t tap = 0; tap < taps; ++tap) {
          packed[((group * taps + tap) * group_channels + c) * group_out + o] =
              weight[((group * group_out + o) * group_channels + c) * taps + tap];
        }
      }
    }
  }
  return packed;
}

ConvGeometry transposed_geometry(const ConvGeometry& g, int64_t out_channels) {
  ConvGeometry t = g;
  t.channels = out_channels;
  t.height = g.out_h;
  t.width = g.out_w;
  t.pad_h = g.dilation_h * (g.kernel_h - 1) - g.pad_h;
  t.pad_w = g.dilation_w * (g.kernel_w - 1) - g.pad_w;
  t.out_h = g.height;
  t.out_w = g.width;
  return t;
}

}  // namespace conv_ext::cpu

#if CONV_EXT_X86_SIMD
// The kernels themselves (the column index tables, the forward panels and the dw blocks), once per instruction set.
#define CONV_EXT_SIMD_BODY "implicit_conv2d_simd.inc"
#include "simd_for_each_isa.h"

namespace conv_ext::cpu {

void implicit_conv2d_simd(const float* input, const float* weight, const float* bias, float* output,
                          const ConvGeometry& g, int64_t groups, int64_t out_channels) {
  for_simd_isa(avx512::implicit_conv2d, avx2::implicit_conv2d)(input, weight, bias, output, g, groups, out_channels);
}

void implicit_conv2d_grad_weight_simd(const float* grad_output, const float* input, float* grad_weight,
                                      const ConvGeometry& g, int64_t groups, int64_t out_channels) {
  for_simd_isa(avx512::implicit_conv2d_grad_weight, avx2::implicit_conv2d_grad_weight)(
      grad_output, input, grad_weight, g, groups, out_channels);
}

}  // namespace conv_ext::cpu

#else  // not x86-64 with GCC/Clang: use_implicit_conv2d() is false (simd_gemm_enabled() is)

namespace conv_ext::cpu {

void implicit_conv2d_simd(const float*, const float*, const float*, float*, const ConvGeometry&, int64_t, int64_t) {
  TORCH_CHECK(false, "conv_ext: the SIMD implicit-GEMM convolution is not built for this CPU");
}

void implicit_conv2d_grad_weight_simd(const float*, const float*, float*, const ConvGeometry&, int64_t, int64_t) {
  TORCH_CHECK(false, "conv_ext: the SIMD implicit-GEMM convolution is not built for this CPU");
}

}  // namespace conv_ext::cpu

#endif
