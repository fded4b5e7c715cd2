// The weight gradient in float32 with AVX-512 over the taps inside the image only, with the output channels in the
// vector lanes:
//
//   dw^T[(c, i, j)][o] = sum over samples n and the outputs (oh, ow) whose window puts tap (i, j) inside the image
//                        of x[n][c][oh*s_h - p_h + i*d_h][ow*s_w - p_w + j*d_w] * dy^T[n][oh, ow][o]
//
// A register block is 8 input channels at one tap (i, j) x 32 output channels: its rows share the tap, and so
// the rectangle of outputs whose window puts it inside the image (valid_outputs). The sum runs over exactly that
// rectangle, reading the input in place: no padded copy, no masks, and no multiply-add on the padding (the
// implicit GEMM's dot products along the outputs spend seed-conv2's 16% of padding taps in their lanes). dy is
// transposed to [q][o] per pass of ~1 MiB of samples (or of output rows), which every block sums over. Each dw
// element has one writer, and its sum runs in the same order whatever the thread count.
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <vector>

#include "column_rows.h"
#include "gemm.h"
#include "tiled_conv2d.h"

namespace conv_ext::cpu {

bool use_exact_taps_grad_weight(const at::Tensor& input, int64_t group_out) {
  return output_channel_lanes_apply(input, group_out);
}

}  // namespace conv_ext::cpu

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "avx512_micro_kernel.h"
#include "avx512_transpose.h"

namespace conv_ext::cpu {

namespace {

using avx512::kCols;
using avx512::kRows;

// The samples and output rows of one pass: the input and dy^T that every task sums over (~L2 sized).
constexpr int64_t kPassBytes = int64_t{1} << 20;

// One pass of the weight gradient: samples [n0, n0 + samples) (their dy transposed to [q][o] in `grad_output_t`),
// output rows [oh_begin, oh_end).
struct GradPass {
  const float* grad_output_t;
  int64_t n0, samples, oh_begin, oh_end;
};

// dw^T[(c, tap)][o] += the pass's sum for ROWS channels from c0 (of the whole input) at one tap (i, j) and
// 16*VECTORS lanes from o0 (of the whole output): over the outputs whose window puts the tap inside the image.
template <int ROWS, int VECTORS>
CONV_EXT_AVX512 void grad_weight_tile(const float* input, const GradPass& pass, const ConvGeometry& g,
                                      int64_t out_channels, int64_t c0, int64_t i, int64_t j, int64_t o0,
                                      const avx512::CBlock& c) {
  __m512 sum[ROWS][VECTORS];
  CONV_EXT_UNROLL for (int r = 0; r < ROWS; ++r) {
    CONV_EXT_UNROLL for (int v = 0; v < VECTORS; ++v) sum[r][v] = _mm512_setzero_ps();
  }
  const int64_t plane = g.height * g.width, positions = g.out_plane();
  const int64_t h_offset = i * g.dilation_h - g.pad_h, w_offset = j * g.dilation_w - g.pad_w;
  const ValidRange all_rows = valid_outputs(g.out_h, g.height, g.stride_h, h_offset);
  const int64_t oh_begin = std::max(all_rows.begin, pass.oh_begin), oh_end = std::min(all_rows.end, pass.oh_end);
  const ValidRange cols = valid_outputs(g.out_w, g.width, g.stride_w, w_offset);
  for (int64_t n = 0; n < pass.samples; ++n) {
    const float* x = input + ((pass.n0 + n) * g.channels + c0) * plane + w_offset;
    const float* dy = pass.grad_output_t + n * positions * out_channels + o0;
    for (int64_t oh = oh_begin; oh < oh_end; ++oh) {
      const float* x_row = x + (oh * g.stride_h + h_offset) * g.width;
      const float* dy_row = dy + (oh * g.out_w + cols.begin) * out_channels;
      for (int64_t ow = cols.begin; ow < cols.end; ++ow, dy_row += out_channels) {
        __m512 b_row[VECTORS];
        CONV_EXT_UNROLL for (int v = 0; v < VECTORS; ++v) b_row[v] = _mm512_maskz_loadu_ps(c.lanes[v], dy_row + 16 * v);
        const float* a = x_row + ow * g.stride_w;
        avx512::fma_step<ROWS, VECTORS>(sum, a, plane, b_row);
      }
    }
  }
  avx512::store_block<ROWS, VECTORS>(sum, c, true, nullptr);
}

// A task: channels [c0, c0 + rows) of one group at one tap (rows: 8, or 4, 2, 1 at the end), lanes [o0, o0 + 32).
struct GradTask {
  int64_t group, tap, c0, rows, o0;
};

std::vector<GradTask> grad_tasks(int64_t groups, int64_t taps, int64_t group_channels, int64_t group_out) {
  std::vector<GradTask> tasks;
  for (int64_t group = 0; group < groups; ++group) {
    for (int64_t tap = 0; tap < taps; ++tap) {
      for (int64_t c0 = 0; c0 < group_channels;) {
        const int64_t left = group_channels - c0;
        const int64_t rows = left >= kRows ? kRows : left >= 4 ? 4 : left >= 2 ? 2 : 1;
        for (int64_t o0 = 0; o0 < group_out; o0 += kCols) tasks.push_back({group, tap, c0, rows, o0});
        c0 += rows;
      }
    }
  }
  return tasks;
}

template <int VECTORS>
CONV_EXT_AVX512 void run_grad_task(const GradTask& task, const float* input, const GradPass& pass,
                                   const ConvGeometry& g, int64_t groups, int64_t out_channels,
                                   float* grad_weight_t) {
  const int64_t group_out = out_channels / groups, group_channels = g.channels / groups;
  const int64_t taps = g.kernel_h * g.kernel_w, lanes = std::min(kCols, group_out - task.o0);
  // dw^T of group g: [c][tap][o], rows (c, tap) taps * group_out apart for consecutive channels.
  const avx512::CBlock c{
      grad_weight_t + ((task.group * group_channels + task.c0) * taps + task.tap) * group_out + task.o0,
      taps * group_out,
      {avx512::first_lanes(lanes), avx512::first_lanes(lanes - 16)}};
  const int64_t c0 = task.group * group_channels + task.c0, o0 = task.group * group_out + task.o0;
  const int64_t i = task.tap / g.kernel_w, j = task.tap % g.kernel_w;
  switch (task.rows) {
    case kRows: return grad_weight_tile<kRows, VECTORS>(input, pass, g, out_channels, c0, i, j, o0, c);
    case 4: return grad_weight_tile<4, VECTORS>(input, pass, g, out_channels, c0, i, j, o0, c);
    case 2: return grad_weight_tile<2, VECTORS>(input, pass, g, out_channels, c0, i, j, o0, c);
    default: return grad_weight_tile<1, VECTORS>(input, pass, g, out_channels, c0, i, j, o0, c);
  }
}

}  // namespace

void exact_taps_grad_weight_avx512(const float* grad_output, const float* input, float* grad_weight,
                                   const ConvGeometry& g, int64_t groups, int64_t out_channels) {
  const int64_t group_out = out_channels / groups, group_channels = g.channels / groups;
  const int64_t taps = g.kernel_h * g.kernel_w, depth = group_channels * taps, positions = g.out_plane();
  std::vector<float> grad_weight_t(static_cast<size_t>(groups * depth * group_out), 0.0f);  // dw^T per group
  if (g.batch > 0 && positions > 0 && depth > 0) {
    // Passes: as many samples as fit kPassBytes (their input and dy^T), or, when one sample is larger, a share of
    // its output rows.
    const int64_t sample_bytes = (g.channels * g.height * g.width + positions * out_channels) * int64_t(sizeof(float));
    const int64_t samples = std::clamp<int64_t>(kPassBytes / sample_bytes, 1, g.batch);
    const int64_t rows = samples > 1 ? g.out_h : std::clamp<int64_t>(g.out_h * kPassBytes / sample_bytes, 1, g.out_h);
    std::vector<float> transposed(static_cast<size_t>(samples * positions * out_channels));
    const std::vector<GradTask> tasks = grad_tasks(groups, taps, group_channels, group_out);
    for (int64_t n0 = 0; n0 < g.batch; n0 += samples) {
      const int64_t count = std::min(samples, g.batch - n0);
      // dy^T of the pass, in parallel over (sample, block of 64 positions): a pass may hold one sample.
      const int64_t blocks = (positions + 63) / 64;
      at::parallel_for(0, count * blocks, 1, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) {
          const int64_t s = t / blocks, q0 = t % blocks * 64;
          avx512::transpose_plane(grad_output + (n0 + s) * out_channels * positions + q0, positions,
                                  transposed.data() + (s * positions + q0) * out_channels, out_channels,
                                  out_channels, std::min<int64_t>(64, positions - q0), nullptr);
        }
      });
      for (int64_t oh = 0; oh < g.out_h; oh += rows) {
        const GradPass pass{transposed.data(), n0, count, oh, std::min(g.out_h, oh + rows)};
        at::parallel_for(0, int64_t(tasks.size()), 1, [&](int64_t begin, int64_t end) {
          for (int64_t t = begin; t < end; ++t) {
            const bool two_vectors = group_out - tasks[t].o0 > 16;
            (two_vectors ? run_grad_task<2> : run_grad_task<1>)(tasks[t], input, pass, g, groups, out_channels,
                                                                grad_weight_t.data());
          }
        });
      }
    }
  }
  // dw[o][k] of group g = dw^T[g][k][o - g*O/g].
  for (int64_t group = 0; group < groups; ++group) {
    avx512::transpose_plane(grad_weight_t.data() + group * depth * group_out, group_out,
                            grad_weight + group * group_out * depth, depth, depth, group_out, nullptr);
  }
}

}  // namespace conv_ext::cpu

#else  // not x86-64 with GCC/Clang: use_exact_taps_grad_weight() is false (avx512_gemm_enabled() is)

namespace conv_ext::cpu {

void exact_taps_grad_weight_avx512(const float*, const float*, float*, const ConvGeometry&, int64_t, int64_t) {
  TORCH_CHECK(false, "conv_ext: the AVX-512 exact-taps weight gradient is not built for this CPU");
}

}  // namespace conv_ext::cpu

#endif
