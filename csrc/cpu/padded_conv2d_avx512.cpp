// Convolutions in float32 with AVX-512 as GEMMs with the output channels in the vector lanes, reading the columns
// as broadcasts from a zero-padded copy of the input (for stride_w > 1, where the implicit GEMM's lanes along the
// output positions would need even-lane permutes).
//
// The forward: out^T[q][o] = sum over k of columns[k][q] * W^T[k][o], in the order k = (tap, c) of
// pack_weight_tap_major: for 8 output positions along a row (rows of A, s_w apart in the padded row) and 32 output
// channels (lanes, the packed weight's rows), one output row of a sample at a time, transposed into the output.
//
// The weight gradient:
//   dw^T[k][o] = sum over samples n and output positions q of columns[k][n, q] * dy^T[n, q][o],   k = (c, i, j)
//
// On a copy of the input padded with zeros by (p_h, p_w) (planes of Hp x Wp), column row k at output (oh, ow) is
//   x_padded[n][c][(oh*s_h + i*d_h) * Wp + ow*s_w + j*d_w] = x_padded[n][row_offset(k) + oh*s_h*Wp + ow*s_w]
// with row_offset(c, i, j) = c*Hp*Wp + i*d_h*Wp + j*d_w: the micro-kernel broadcasts A[k][q] from there (one
// pointer per row k, one running position) and loads the rows of B, dy^T[q][o0, o0 + 32), from dy transposed per
// sample. No lane masks (the padding supplies the zeros), any stride and dilation, every lane an output channel.
// Each dw element has one writer, and the sums run in the same order whatever the thread count.
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <vector>

#include "gemm.h"
#include "tiled_conv2d.h"

namespace conv_ext::cpu {

// The samples and output rows of one pass of the weight gradient: the padded input and dy^T that every task sums
// over (~L2 sized).
constexpr int64_t kPassBytes = int64_t{1} << 20;

namespace {

// Below 16 output channels per group most of each vector's lanes would be idle.
bool padded_gemm_applies(const at::Tensor& input, int64_t group_out) {
  return input.scalar_type() == at::kFloat && avx512_gemm_enabled() && group_out >= 16;
}

}  // namespace

bool use_padded_conv2d(const at::Tensor& input, const ConvGeometry& g, int64_t group_out) {
  // With stride_w 1 the implicit GEMM forward measured faster on every suite shape.
  return padded_gemm_applies(input, group_out) && g.stride_w != 1;
}

bool use_padded_grad_weight(const at::Tensor& input, const ConvGeometry& g, int64_t out_channels, int64_t groups) {
  if (!padded_gemm_applies(input, out_channels / groups)) return false;
  if (g.stride_w != 1) return true;  // the implicit GEMM's dw reads the input rows with step 1 only
  // With stride 1, the implicit GEMM's dw sums its (o, k) blocks over blocks of whole samples, its lane masks set
  // and its lane sums paid once per block. Where a sample (its input and dy) is more than half a pass, a block
  // holds one sample or less: there, with padding, the padded dw measured faster (2 threads: resnet-3x3 17.5 ->
  // 15.6 ms, vgg-like 18.1 -> 13.1 ms); where samples fit (seed-conv2, dilated) or nothing is padded (pointwise),
  // the implicit one.
  const bool padded = g.pad_h != 0 || g.pad_w != 0;
  const int64_t sample_bytes =
      (g.channels * g.height * g.width + out_channels * g.out_plane()) * int64_t(sizeof(float));
  return padded && 2 * sample_bytes > kPassBytes;
}

}  // namespace conv_ext::cpu

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "avx512_micro_kernel.h"

namespace conv_ext::cpu {

namespace {

using avx512::kCols;
using avx512::kRows;

struct Pass {
  const float* input;       // padded input of the pass's first sample
  const float* grad_output; // dy^T of the pass's first sample: [q][o]
  int64_t samples, oh_begin, oh_end;
};

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

// The 16 x 16 block in r, transposed in registers: r[i][j] becomes r[j][i]. The shuffles are the masked forms with
// every lane set: GCC 12's plain forms start from an "undefined" vector that -Wmaybe-uninitialized reports.
CONV_EXT_AVX512 void transpose_16x16(__m512 (&r)[16]) {
  const __mmask16 all = 0xFFFF;
  const __mmask8 all_pairs = 0xFF;
  __m512 t[16];
  CONV_EXT_UNROLL for (int i = 0; i < 16; i += 2) {  // pairs of rows, lanes interleaved
    t[i] = _mm512_mask_unpacklo_ps(r[i], all, r[i], r[i + 1]);
    t[i + 1] = _mm512_mask_unpackhi_ps(r[i], all, r[i], r[i + 1]);
  }
  CONV_EXT_UNROLL for (int i = 0; i < 16; i += 4) {  // pairs of pairs, 64-bit lanes interleaved
    CONV_EXT_UNROLL for (int k = 0; k < 2; ++k) {
      const __m512d a = _mm512_castps_pd(t[i + k]), b = _mm512_castps_pd(t[i + k + 2]);
      r[i + 2 * k] = _mm512_castpd_ps(_mm512_mask_unpacklo_pd(a, all_pairs, a, b));
      r[i + 2 * k + 1] = _mm512_castpd_ps(_mm512_mask_unpackhi_pd(a, all_pairs, a, b));
    }
  }
  CONV_EXT_UNROLL for (int i = 0; i < 16; i += 8) {  // 128-bit lanes: the even ones, then the odd ones
    CONV_EXT_UNROLL for (int k = 0; k < 4; ++k) {
      t[i + k] = _mm512_mask_shuffle_f32x4(r[i + k], all, r[i + k], r[i + k + 4], 0x88);
      t[i + k + 4] = _mm512_mask_shuffle_f32x4(r[i + k], all, r[i + k], r[i + k + 4], 0xDD);
    }
  }
  CONV_EXT_UNROLL for (int k = 0; k < 8; ++k) {
    r[k] = _mm512_mask_shuffle_f32x4(t[k], all, t[k], t[k + 8], 0x88);
    r[k + 8] = _mm512_mask_shuffle_f32x4(t[k], all, t[k], t[k + 8], 0xDD);
  }
}

// to[q * to_stride + o] = from[o * from_stride + q] (+ to_row_bias[q]) for o < rows, q < cols: a matrix
// transposed in blocks of 16 x 16.
CONV_EXT_AVX512 void transpose_plane(const float* from, int64_t from_stride, float* to, int64_t to_stride,
                                     int64_t rows, int64_t cols, const float* to_row_bias) {
  for (int64_t o0 = 0; o0 < rows; o0 += 16) {
    const int64_t block_rows = std::min<int64_t>(16, rows - o0);
    for (int64_t q0 = 0; q0 < cols; q0 += 16) {
      const int64_t block_cols = std::min<int64_t>(16, cols - q0);
      const __mmask16 row_lanes = avx512::first_lanes(block_cols), col_lanes = avx512::first_lanes(block_rows);
      __m512 r[16];
      CONV_EXT_UNROLL for (int i = 0; i < 16; ++i) {
        r[i] = i < block_rows ? _mm512_maskz_loadu_ps(row_lanes, from + (o0 + i) * from_stride + q0)
                              : _mm512_setzero_ps();
      }
      transpose_16x16(r);
      CONV_EXT_UNROLL for (int i = 0; i < 16; ++i) {
        if (i >= block_cols) continue;
        if (to_row_bias) r[i] = _mm512_add_ps(r[i], _mm512_set1_ps(to_row_bias[q0 + i]));
        _mm512_mask_storeu_ps(to + (q0 + i) * to_stride + o0, col_lanes, r[i]);
      }
    }
  }
}

// Plane c of sample n of the input, padded, into `to` (layout.plane floats).
void pad_plane(const float* input, const ConvGeometry& g, const PaddedLayout& layout, int64_t n, int64_t c,
               float* to) {
  const float* from = input + (n * g.channels + c) * g.height * g.width;
  std::fill(to, to + layout.plane, 0.0f);
  for (int64_t h = 0; h < g.height; ++h) {
    std::copy(from + h * g.width, from + (h + 1) * g.width, to + (h + g.pad_h) * layout.width + g.pad_w);
  }
}

// The input's samples [n0, n0 + count), padded, into `padded` (nothing to do when the layout has no padding).
void pad_samples(const float* input, const ConvGeometry& g, const PaddedLayout& layout, int64_t n0, int64_t count,
                 float* padded) {
  if (!layout.copy) return;
  at::parallel_for(0, count * g.channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t sc = begin; sc < end; ++sc) {  // (sample, channel)
      pad_plane(input, g, layout, n0 + sc / g.channels, sc % g.channels, padded + sc * layout.plane);
    }
  });
}

// Samples [n0, n0 + count) of the input, padded, into `padded`; their dy transposed to [q][o] into `transposed`.
void prepare_samples(const float* input, const float* grad_output, const ConvGeometry& g, int64_t out_channels,
                     const PaddedLayout& layout, int64_t n0, int64_t count, float* padded, float* transposed) {
  pad_samples(input, g, layout, n0, count, padded);
  const int64_t positions = g.out_plane();
  at::parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end; ++s) {
      transpose_plane(grad_output + (n0 + s) * out_channels * positions, positions,
                      transposed + s * positions * out_channels, out_channels, out_channels, positions, nullptr);
    }
  });
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

// C (ROWS rows of dw^T from k0, 16*VECTORS lanes from o0 of dw^T's row) += the pass's sum. `row_offsets`: each
// row's offset(k) in the padded input, group included.
template <int ROWS, int VECTORS>
CONV_EXT_AVX512 void grad_weight_tile(const Pass& pass, const ConvGeometry& g, const PaddedLayout& layout,
                                      int64_t out_channels, const int64_t* row_offsets, int64_t o0,
                                      const avx512::CBlock& c) {
  __m512 sum[ROWS][VECTORS];
  CONV_EXT_UNROLL for (int r = 0; r < ROWS; ++r) {
    CONV_EXT_UNROLL for (int v = 0; v < VECTORS; ++v) sum[r][v] = _mm512_setzero_ps();
  }
  const int64_t positions = g.out_plane(), row_step = g.stride_h * layout.width;
  for (int64_t n = 0; n < pass.samples; ++n) {
    const float* x = pass.input + n * layout.sample;
    const float* dy = pass.grad_output + n * positions * out_channels + o0;
    for (int64_t oh = pass.oh_begin; oh < pass.oh_end; ++oh) {
      const float* x_row[ROWS];
      CONV_EXT_UNROLL for (int r = 0; r < ROWS; ++r) x_row[r] = x + row_offsets[r] + oh * row_step;
      const float* dy_row = dy + oh * g.out_w * out_channels;
      for (int64_t ow = 0, at = 0; ow < g.out_w; ++ow, at += g.stride_w, dy_row += out_channels) {
        __m512 b_row[VECTORS];
        CONV_EXT_UNROLL for (int v = 0; v < VECTORS; ++v) b_row[v] = _mm512_maskz_loadu_ps(c.lanes[v], dy_row + 16 * v);
        avx512::fma_step<ROWS, VECTORS>(sum, [&x_row, at](int r) { return x_row[r][at]; }, b_row);
      }
    }
  }
  avx512::store_block<ROWS, VECTORS>(sum, c, true, nullptr);
}

// A task: rows [k0, k0 + rows) of one group's dw^T (rows: 8, or 4, 2, 1 at the end), lanes [o0, o0 + 32).
struct Task {
  int64_t group, k0, rows, o0;
};

std::vector<Task> make_tasks(int64_t groups, int64_t depth, int64_t group_out) {
  std::vector<Task> tasks;
  for (int64_t group = 0; group < groups; ++group) {
    for (int64_t k0 = 0; k0 < depth;) {
      const int64_t left = depth - k0;
      const int64_t rows = left >= kRows ? kRows : left >= 4 ? 4 : left >= 2 ? 2 : 1;
      for (int64_t o0 = 0; o0 < group_out; o0 += kCols) tasks.push_back({group, k0, rows, o0});
      k0 += rows;
    }
  }
  return tasks;
}

template <int VECTORS>
CONV_EXT_AVX512 void run_task(const Task& task, const Pass& pass, const ConvGeometry& g, const PaddedLayout& layout,
                              int64_t groups, int64_t out_channels, const std::vector<int64_t>& row_offsets,
                              float* grad_weight_t) {
  const int64_t group_out = out_channels / groups, depth = int64_t(row_offsets.size()) / groups;
  const int64_t lanes = std::min(kCols, group_out - task.o0);
  const avx512::CBlock c{grad_weight_t + (task.group * depth + task.k0) * group_out + task.o0, group_out,
                         {avx512::first_lanes(lanes), avx512::first_lanes(lanes - 16)}};
  const int64_t* offsets = row_offsets.data() + task.group * depth + task.k0;
  const int64_t o0 = task.group * group_out + task.o0;
  switch (task.rows) {
    case kRows: return grad_weight_tile<kRows, VECTORS>(pass, g, layout, out_channels, offsets, o0, c);
    case 4: return grad_weight_tile<4, VECTORS>(pass, g, layout, out_channels, offsets, o0, c);
    case 2: return grad_weight_tile<2, VECTORS>(pass, g, layout, out_channels, offsets, o0, c);
    default: return grad_weight_tile<1, VECTORS>(pass, g, layout, out_channels, offsets, o0, c);
  }
}

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

void padded_grad_weight_avx512(const float* grad_output, const float* input, float* grad_weight,
                               const ConvGeometry& g, int64_t groups, int64_t out_channels) {
  const int64_t group_out = out_channels / groups, group_channels = g.channels / groups;
  const int64_t taps = g.kernel_h * g.kernel_w, depth = group_channels * taps, positions = g.out_plane();
  std::vector<float> grad_weight_t(static_cast<size_t>(groups * depth * group_out), 0.0f);  // dw^T per group
  if (g.batch > 0 && positions > 0 && depth > 0) {
    const PaddedLayout layout(g);
    std::vector<int64_t> row_offsets(static_cast<size_t>(groups * depth));  // per group, per k
    for (int64_t k = 0; k < groups * depth; ++k) {
      row_offsets[k] = k / taps * layout.plane + layout.tap_offset(g, k % taps);  // channel k / taps, all groups
    }
    // Passes: as many samples as fit kPassBytes, or, when one sample is larger, a share of its output rows.
    const int64_t sample_bytes = (layout.sample + positions * out_channels) * int64_t(sizeof(float));
    const int64_t samples = std::clamp<int64_t>(kPassBytes / sample_bytes, 1, g.batch);
    const int64_t rows = samples > 1 ? g.out_h : std::clamp<int64_t>(g.out_h * kPassBytes / sample_bytes, 1, g.out_h);
    std::vector<float> padded(layout.copy ? static_cast<size_t>(samples * layout.sample) : 0);
    std::vector<float> transposed(static_cast<size_t>(samples * positions * out_channels));
    const std::vector<Task> tasks = make_tasks(groups, depth, group_out);
    for (int64_t n0 = 0; n0 < g.batch; n0 += samples) {
      const int64_t count = std::min(samples, g.batch - n0);
      prepare_samples(input, grad_output, g, out_channels, layout, n0, count, padded.data(), transposed.data());
      const float* x = layout.copy ? padded.data() : input + n0 * layout.sample;
      for (int64_t oh = 0; oh < g.out_h; oh += rows) {
        const Pass pass{x, transposed.data(), count, oh, std::min(g.out_h, oh + rows)};
        at::parallel_for(0, int64_t(tasks.size()), 1, [&](int64_t begin, int64_t end) {
          for (int64_t t = begin; t < end; ++t) {
            const bool two_vectors = group_out - tasks[t].o0 > 16;
            (two_vectors ? run_task<2> : run_task<1>)(tasks[t], pass, g, layout, groups, out_channels, row_offsets,
                                                      grad_weight_t.data());
          }
        });
      }
    }
  }
  // dw[o][k] of group g = dw^T[g][k][o - g*O/g].
  for (int64_t group = 0; group < groups; ++group) {
    transpose_plane(grad_weight_t.data() + group * depth * group_out, group_out,
                    grad_weight + group * group_out * depth, depth, depth, group_out, nullptr);
  }
}

}  // namespace conv_ext::cpu

#else  // not x86-64 with GCC/Clang: use_padded_conv2d() is false (avx512_gemm_enabled() is)

namespace conv_ext::cpu {

void padded_conv2d_avx512(const float*, const float*, const float*, float*, const ConvGeometry&, int64_t, int64_t) {
  TORCH_CHECK(false, "conv_ext: the AVX-512 padded convolution is not built for this CPU");
}

void padded_grad_weight_avx512(const float*, const float*, float*, const ConvGeometry&, int64_t, int64_t) {
  TORCH_CHECK(false, "conv_ext: the AVX-512 weight gradient is not built for this CPU");
}

}  // namespace conv_ext::cpu

#endif
