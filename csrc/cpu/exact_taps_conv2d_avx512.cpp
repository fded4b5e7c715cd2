// The forward in float32 with AVX-512 over the taps inside the image only: no multiply-add reads the padding.
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
// samples, [c][h][w][sample], so that the 8 broadcasts of a step read 32 contiguous bytes (read in place, 8
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

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "avx512_micro_kernel.h"
#include "avx512_transpose.h"

namespace conv_ext::cpu {

namespace {

using avx512::kCols;

// The samples of a task: up to 8 (a register block of 8 samples x 32 output channels), or 16 where a group has 16
// output channels or fewer (16 x 16: as many sums in registers, and one load of B per 16 broadcasts, not per 8).
template <int SAMPLES>
constexpr bool kWideSamples = SAMPLES == 16;

// The input rows [h_begin, h_end) of samples [n0, n0 + samples) (at most SAMPLES) of one group, interleaved:
// to[((c * (h_end - h_begin) + h - h_begin) * W + w) * SAMPLES + s] = x[n0 + s][c][h][w]; absent samples 0.
template <int SAMPLES>
CONV_EXT_AVX512 void interleave_samples(const float* input, const ConvGeometry& g, int64_t n0, int64_t samples,
                                        int64_t first_channel, int64_t channels, int64_t h_begin, int64_t h_end,
                                        float* to) {
  const int64_t plane = g.height * g.width;
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t h = h_begin; h < h_end; ++h, to += g.width * SAMPLES) {
      const float* from = input + (n0 * g.channels + first_channel + c) * plane + h * g.width;
      for (int64_t w0 = 0; w0 < g.width; w0 += 16) {
        const int64_t count = std::min<int64_t>(16, g.width - w0);
        const __mmask16 lanes = avx512::first_lanes(count);
        __m512 r[16];
        CONV_EXT_UNROLL for (int s = 0; s < 16; ++s) {
          r[s] = s < samples ? _mm512_maskz_loadu_ps(lanes, from + s * g.channels * plane + w0) : _mm512_setzero_ps();
        }
        avx512::transpose_16x16(r);  // r[w] holds the samples at w0 + w in its first SAMPLES lanes
        for (int64_t w = 0; w < count; ++w) {
          // The first SAMPLES lanes (a masked store: GCC 12's 512-to-256-bit cast warns of an undefined vector).
          _mm512_mask_storeu_ps(to + (w0 + w) * SAMPLES, avx512::first_lanes(SAMPLES), r[w]);
        }
      }
    }
  }
}

// The row source of one output position: step (i, j, c) over the window's taps inside the image reads A[r] =
// sample r of the interleaved input (rows of A one float apart) and B = the packed weight's row [(i, j), c][o0, +32).
struct ExactTaps {
  const float* weight;  // the packed weight of the group at the window's first tap (i, j), channel 0, lane o0
  int64_t group_out;    // the packed weight's row length
  __mmask16 lanes[2];
  int64_t channels, channel_step;  // input channels per group; their distance in the interleaved input
  int64_t tap_rows, tap_cols;      // the window's taps inside the image
  int64_t row_step, col_step;      // the interleaved input's distance between tap rows, between tap columns
  int64_t weight_row_step;         // the packed weight's distance between tap rows

  // The rows of A are consecutive floats (a_rs is 1): as a constant, the broadcasts take fixed offsets.
  template <int ROWS, int VECTORS>
  CONV_EXT_AVX512_INLINE void sum_into(int64_t, const float* a, int64_t, int64_t,
                                       __m512 (&block)[ROWS][VECTORS]) const {
    __mmask16 mask[VECTORS];  // in registers for the whole sum, not reloaded every step
    CONV_EXT_UNROLL for (int v = 0; v < VECTORS; ++v) mask[v] = lanes[v];
    for (int64_t i = 0; i < tap_rows; ++i) {
      const float* b = weight + i * weight_row_step;
      for (int64_t j = 0; j < tap_cols; ++j) {
        const float* x = a + i * row_step + j * col_step;
        for (int64_t c = 0; c < channels; ++c, x += channel_step, b += group_out) {
          __m512 row[VECTORS];
          CONV_EXT_UNROLL for (int v = 0; v < VECTORS; ++v) row[v] = _mm512_maskz_loadu_ps(mask[v], b + 16 * v);
          avx512::fma_step<ROWS, VECTORS>(block, [x](int r) { return x[r]; }, row);
        }
      }
    }
  }
};

template <int SAMPLES>
CONV_EXT_AVX512 void exact_taps_forward(const float* input, const float* weight, const float* bias, float* output,
                                        const ConvGeometry& g, int64_t groups, int64_t out_channels) {
  const int64_t group_out = out_channels / groups, group_channels = g.channels / groups;
  const int64_t taps = g.kernel_h * g.kernel_w, depth = group_channels * taps, positions = g.out_plane();
  if (g.batch == 0 || positions == 0) return;
  const std::vector<float> packed = pack_weight_tap_major(weight, groups, out_channels, group_channels, taps);
  std::vector<ValidRange> column_taps(static_cast<size_t>(g.out_w));  // per ow: the taps j inside the image
  for (int64_t ow = 0; ow < g.out_w; ++ow) {
    column_taps[ow] = valid_taps(ow * g.stride_w - g.pad_w, g.width, g.dilation_w, g.kernel_w);
  }
  // Work units (group, band of output rows, sample), samples innermost; each thread takes an equal share and
  // runs it in blocks of up to SAMPLES consecutive samples of one (group, band). Bands only where the samples
  // and groups alone would leave threads idle (each band interleaves the input rows of its windows, kh - 1 of
  // them shared with the next band).
  const int64_t units_per_band = g.batch * groups, threads = at::get_num_threads();
  const int64_t bands = std::clamp<int64_t>((4 * threads + units_per_band - 1) / units_per_band, 1, g.out_h);
  const int64_t band_rows = (g.out_h + bands - 1) / bands;
  const int64_t input_rows = std::min(g.height, (band_rows - 1) * g.stride_h + (g.kernel_h - 1) * g.dilation_h + 1);
  at::parallel_for(0, bands * units_per_band, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> interleaved(static_cast<size_t>(group_channels * input_rows * g.width * SAMPLES));
    std::vector<float> row_t(static_cast<size_t>(SAMPLES * g.out_w * group_out));  // out^T of a row: [s][ow][o]
    for (int64_t unit = begin, samples = 0; unit < end; unit += samples) {
      const int64_t n0 = unit % g.batch, group = unit / g.batch % groups, band = unit / units_per_band;
      // The samples left in this (group, band), in blocks of near-equal size (50 as 13, 13, 12, 12, not 16, 16,
      // 16, 2: a 2-row block is bound by the FMA latency).
      const int64_t left = std::min(g.batch - n0, end - unit), blocks = (left + SAMPLES - 1) / SAMPLES;
      samples = (left + blocks - 1) / blocks;
      const int64_t oh_begin = band * band_rows, oh_end = std::min(g.out_h, oh_begin + band_rows);
      if (oh_begin >= oh_end) continue;
      // The input rows that the band's windows reach.
      const int64_t h_begin = std::max<int64_t>(0, oh_begin * g.stride_h - g.pad_h);
      const int64_t h_end = std::min(g.height, (oh_end - 1) * g.stride_h - g.pad_h + (g.kernel_h - 1) * g.dilation_h + 1);
      const int64_t rows = std::max<int64_t>(0, h_end - h_begin);
      interleave_samples<SAMPLES>(input, g, n0, samples, group * group_channels, group_channels, h_begin, h_begin + rows,
                         interleaved.data());
      for (int64_t oh = oh_begin; oh < oh_end; ++oh) {
        const int64_t h_origin = oh * g.stride_h - g.pad_h;
        const ValidRange i = valid_taps(h_origin, g.height, g.dilation_h, g.kernel_h);
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          const ValidRange j = column_taps[ow];
          const bool inside = i.end > i.begin && j.end > j.begin;
          // The window's first tap inside the image, in the interleaved rows (nothing is read when there is none).
          const int64_t h = h_origin + i.begin * g.dilation_h - h_begin, w = ow * g.stride_w - g.pad_w + j.begin * g.dilation_w;
          const float* a = interleaved.data() + (inside ? (h * g.width + w) * SAMPLES : 0);
          for (int64_t o0 = 0; o0 < group_out; o0 += kCols) {
            const int64_t cols = std::min(kCols, group_out - o0);
            const ExactTaps source{
                packed.data() + ((group * taps + i.begin * g.kernel_w + j.begin) * group_channels) * group_out + o0,
                group_out,
                {avx512::first_lanes(cols), avx512::first_lanes(cols - 16)},
                group_channels,
                rows * g.width * SAMPLES,
                inside ? i.end - i.begin : 0,
                j.end - j.begin,
                g.dilation_h * g.width * SAMPLES,
                g.dilation_w * SAMPLES,
                g.kernel_w * group_channels * group_out};
            const avx512::CBlock c{row_t.data() + ow * group_out + o0, g.out_w * group_out,
                                   {avx512::first_lanes(cols), avx512::first_lanes(cols - 16)}};
            // One register block of `samples` rows: one vector of lanes with 16 samples (those groups have 16
            // output channels or fewer), else two where the chunk has over 16 lanes.
            if constexpr (kWideSamples<SAMPLES>) {
              avx512::micro_kernel_rows<SAMPLES, 1>(samples, depth, a, 1, 0, source, c, false, nullptr);
            } else if (cols > 16) {
              avx512::micro_kernel_rows<SAMPLES, 2>(samples, depth, a, 1, 0, source, c, false, nullptr);
            } else {
              avx512::micro_kernel_rows<SAMPLES, 1>(samples, depth, a, 1, 0, source, c, false, nullptr);
            }
          }
        }
        const int64_t o_first = group * group_out;
        for (int64_t s = 0; s < samples; ++s) {
          avx512::transpose_plane(row_t.data() + s * g.out_w * group_out, group_out,
                                  output + ((n0 + s) * out_channels + o_first) * positions + oh * g.out_w, positions,
                                  g.out_w, group_out, bias ? bias + o_first : nullptr);
        }
      }
    }
  });
}

}  // namespace

void exact_taps_conv2d_avx512(const float* input, const float* weight, const float* bias, float* output,
                              const ConvGeometry& g, int64_t groups, int64_t out_channels) {
  (out_channels / groups <= 16 ? exact_taps_forward<16> : exact_taps_forward<8>)(input, weight, bias, output, g, groups,
                                                                                out_channels);
}

}  // namespace conv_ext::cpu

#else  // not x86-64 with GCC/Clang: use_exact_taps_conv2d() is false (avx512_gemm_enabled() is)

namespace conv_ext::cpu {

void exact_taps_conv2d_avx512(const float*, const float*, const float*, float*, const ConvGeometry&, int64_t,
                              int64_t) {
  TORCH_CHECK(false, "conv_ext: the AVX-512 exact-taps convolution is not built for this CPU");
}

}  // namespace conv_ext::cpu

#endif
