// The forward in float32 with AVX-512 as a GEMM with the output channels in the vector lanes, reading the columns
// as broadcasts from a zero-padded copy of the input (for stride_w > 1, where the implicit GEMM's lanes along the
// output positions would need even-lane permutes):
//
//   out^T[q][o] = sum over k of columns[k][q] * W^T[k][o],   in the order k = (tap, c) of pack_weight_tap_major
//
// for 8 output positions along a row (rows of A, s_w apart in the padded row) and 32 output channels (lanes, the
// packed weight's rows), one output row of a sample at a time, transposed into the output. On the copy padded
// with zeros by (p_h, p_w) (planes of Hp x Wp), column row (c, i, j) at output (oh, ow) is
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

}  // namespace conv_ext::cpu

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "avx512_micro_kernel.h"
#include "avx512_transpose.h"

namespace conv_ext::cpu {

namespace {

using avx512::kCols;
using avx512::kRows;
using avx512::transpose_plane;

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

// The forward's row source: B's rows are the packed weight's rows [k][o0, o0 + 32) in the order (tap, c); A's
// step k for the micro-kernel's rows (output positions) is the padded input at a + tap_offsets[tap] + c * plane.
struct PaddedTaps {
  const float* weight;  // packed weight of the group, at lane o0
  int64_t group_out;    // its row length
  __mmask16 lanes[2];
  const int64_t* tap_offsets;
  int64_t taps, channels, plane;

  template <int ROWS, int VECTORS>
  CONV_EXT_AVX512_INLINE void sum_into(int64_t, const float* a, int64_t a_rs, int64_t,
                                       __m512 (&block)[ROWS][VECTORS]) const {
    const float* b = weight;
    for (int64_t tap = 0; tap < taps; ++tap) {
      const float* x = a + tap_offsets[tap];
      for (int64_t c = 0; c < channels; ++c, x += plane, b += group_out) {
        __m512 row[VECTORS];
        CONV_EXT_UNROLL for (int v = 0; v < VECTORS; ++v) row[v] = _mm512_maskz_loadu_ps(lanes[v], b + 16 * v);
        avx512::fma_step<ROWS, VECTORS>(block, x, a_rs, row);
      }
    }
  }
};

}  // namespace

void padded_conv2d_avx512(const float* input, const float* weight, const float* bias, float* output,
                          const ConvGeometry& g, int64_t groups, int64_t out_channels) {
  const int64_t group_out = out_channels / groups, group_channels = g.channels / groups;
  const int64_t taps = g.kernel_h * g.kernel_w, depth = group_channels * taps, positions = g.out_plane();
  if (g.batch == 0 || positions == 0) return;
  const PaddedLayout layout(g);
  const std::vector<float> packed = pack_weight_tap_major(weight, groups, out_channels, group_channels, taps);
  std::vector<int64_t> tap_offsets(static_cast<size_t>(taps));
  for (int64_t tap = 0; tap < taps; ++tap) tap_offsets[tap] = layout.tap_offset(g, tap);
  // Tasks: (sample, group, output row); each computes out^T for the row, then transposes it into the output.
  // A thread pads each sample of its tasks once, into its own buffer (the padded batch would not stay in cache).
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(g.out_w * group_out * depth, 1));
  at::parallel_for(0, g.batch * groups * g.out_h, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> row_t(static_cast<size_t>(g.out_w * group_out));  // out^T of one output row: [ow][o]
    std::vector<float> padded(layout.copy ? static_cast<size_t>(layout.sample) : 0);
    int64_t padded_sample = -1;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t oh = task % g.out_h, group = task / g.out_h % groups, n = task / (g.out_h * groups);
      if (layout.copy && n != padded_sample) {
        for (int64_t c = 0; c < g.channels; ++c) pad_plane(input, g, layout, n, c, padded.data() + c * layout.plane);
      }
      padded_sample = n;
      const float* x = layout.copy ? padded.data() : input + n * layout.sample;
      const StridedMatrix<const float> a{
          x + group * group_channels * layout.plane + oh * g.stride_h * layout.width,
          g.stride_w, 0};
      for (int64_t o0 = 0; o0 < group_out; o0 += kCols) {
        const int64_t cols = std::min(kCols, group_out - o0);
        const __mmask16 lanes[2] = {avx512::first_lanes(cols), avx512::first_lanes(cols - 16)};
        const PaddedTaps rows{packed.data() + group * depth * group_out + o0, group_out, {lanes[0], lanes[1]},
                              tap_offsets.data(), taps, group_channels, layout.plane};
        avx512::any_panel(g.out_w, depth, a, rows, avx512::CBlock{row_t.data() + o0, group_out, {}}, cols, false,
                          nullptr);
      }
      const int64_t o_first = group * group_out;
      transpose_plane(row_t.data(), group_out, output + (n * out_channels + o_first) * positions + oh * g.out_w,
                      positions, g.out_w, group_out, bias ? bias + o_first : nullptr);
    }
  });
}

}  // namespace conv_ext::cpu

#else  // not x86-64 with GCC/Clang: use_padded_conv2d() is false (avx512_gemm_enabled() is)

namespace conv_ext::cpu {

void padded_conv2d_avx512(const float*, const float*, const float*, float*, const ConvGeometry&, int64_t, int64_t) {
  TORCH_CHECK(false, "conv_ext: the AVX-512 padded convolution is not built for this CPU");
}

}  // namespace conv_ext::cpu

#endif
