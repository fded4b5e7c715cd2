// Implicit-GEMM convolution in float32 with AVX-512, for stride 1 with output rows as wide as the input rows
// ('same' padding in width): the GEMM of im2col without the columns.
//
// With stride 1 and Wo == W, column row (c, i, j) at output position q = oh*W + ow reads input element
//   plane_c[q + (i*d_h - p_h)*W + (j*d_w - p_w)]
// so, over consecutive output positions, a row of the column matrix is a contiguous run of the input plane
// shifted by a constant; only the positions whose tap falls in the padding (out of the image, or wrapped into
// the neighbouring row) must read zero. The micro-kernel loads those runs straight from the input with masked
// loads: per panel of 32 output positions and per tap, a lane mask of the positions inside the image.
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <vector>

#include "gemm.h"
#include "tiled_conv2d.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "avx512_micro_kernel.h"

namespace conv_ext::cpu {

namespace {

using avx512::kCols;

// The index tables of the implicit columns of one group (the same for every group and sample): per column
// row (c, i, j) its shift in the input and its tap; per panel of 32 output positions and per tap, the lanes
// whose input lies inside the image (positions past the last one have no lanes).
struct ImplicitColumns {
  int64_t taps;
  std::vector<int64_t> offsets;     // per column row: c*H*W + (i*d_h - p_h)*W + (j*d_w - p_w)
  std::vector<int32_t> tap_of_row;  // per column row: i*kw + j
  std::vector<uint32_t> tap_lanes;  // [panel * taps + tap]: bit l for output position panel*32 + l

  ImplicitColumns(const ConvGeometry& g, int64_t group_channels) : taps(g.kernel_h * g.kernel_w) {
    offsets.resize(group_channels * taps);
    tap_of_row.resize(group_channels * taps);
    for (int64_t c = 0; c < group_channels; ++c) {
      for (int64_t i = 0; i < g.kernel_h; ++i) {
        for (int64_t j = 0; j < g.kernel_w; ++j) {
          const int64_t row = (c * g.kernel_h + i) * g.kernel_w + j;
          offsets[row] = c * g.height * g.width + (i * g.dilation_h - g.pad_h) * g.width + (j * g.dilation_w - g.pad_w);
          tap_of_row[row] = static_cast<int32_t>(i * g.kernel_w + j);
        }
      }
    }
    const int64_t positions = g.out_plane();
    tap_lanes.assign(((positions + kCols - 1) / kCols) * taps, 0);
    for (int64_t q = 0; q < positions; ++q) {
      const int64_t oh = q / g.out_w, ow = q % g.out_w;
      for (int64_t i = 0; i < g.kernel_h; ++i) {
        for (int64_t j = 0; j < g.kernel_w; ++j) {
          const bool inside = in_range(oh + i * g.dilation_h - g.pad_h, g.height) &&
                              in_range(ow + j * g.dilation_w - g.pad_w, g.width);
          if (inside) tap_lanes[(q / kCols) * taps + i * g.kernel_w + j] |= uint32_t{1} << (q % kCols);
        }
      }
    }
  }
  // The same lanes per vector of 16 positions: [vector * taps + tap] (the masks of the dw kernel's loads).
  std::vector<uint16_t> vector_lanes() const {
    std::vector<uint16_t> lanes(tap_lanes.size() * 2);
    for (size_t panel_tap = 0; panel_tap < tap_lanes.size(); ++panel_tap) {
      const size_t panel = panel_tap / taps, tap = panel_tap % taps;
      lanes[(2 * panel) * taps + tap] = uint16_t(tap_lanes[panel_tap]);
      lanes[(2 * panel + 1) * taps + tap] = uint16_t(tap_lanes[panel_tap] >> 16);
    }
    return lanes;
  }
};

// Row p = (c, i, j) of a panel's columns: the input at origin + offsets[p], lanes tap_lanes[taps[p]].
struct ShiftedRows {
  const float* origin;        // the group's first input plane, at the panel's first output position
  const int64_t* offsets;     // ImplicitColumns::offsets
  const int32_t* taps;        // ImplicitColumns::tap_of_row
  const uint32_t* tap_lanes;  // ImplicitColumns::tap_lanes of this panel

  template <int VECTORS>
  CONV_EXT_AVX512 void load(int64_t p, __m512* row) const {
    const uint32_t lanes = tap_lanes[taps[p]];
    // Lanes outside the mask are neither read nor faulted on: the shifted run may start before the plane.
    const float* source = origin + offsets[p];
    CONV_EXT_UNROLL for (int v = 0; v < VECTORS; ++v) {
      row[v] = _mm512_maskz_loadu_ps(__mmask16(lanes >> (16 * v)), source + 16 * v);
    }
  }
};

// The sum of a vector's 16 lanes, as a tree of in-register adds (the same order every time). The shuffles are
// the masked forms with every lane set: GCC 12's plain forms (and _mm512_reduce_add_ps) start from an
// "undefined" vector that -Wuninitialized reports.
CONV_EXT_AVX512 inline float lane_sum(__m512 v) {
  const __mmask16 all = 0xFFFF;
  v = _mm512_add_ps(v, _mm512_mask_shuffle_f32x4(v, all, v, v, _MM_SHUFFLE(1, 0, 3, 2)));  // the other half
  v = _mm512_add_ps(v, _mm512_mask_shuffle_f32x4(v, all, v, v, _MM_SHUFFLE(2, 3, 0, 1)));  // the other quarter
  v = _mm512_add_ps(v, _mm512_mask_permute_ps(v, all, v, _MM_SHUFFLE(1, 0, 3, 2)));        // the other pair
  v = _mm512_add_ps(v, _mm512_mask_permute_ps(v, all, v, _MM_SHUFFLE(2, 3, 0, 1)));        // the other lane
  return _mm512_cvtss_f32(v);
}

// dw's register blocks: ROWS output channels x COLS column rows, summed over 16 positions per lane; 4 x 6 (10
// loads per 24 FMAs) where a group has 4 output channels or more, 1 x 12 (depthwise: one per group).
struct GradBlock {
  int64_t rows, cols;
};
constexpr GradBlock kWideBlock{4, 6}, kNarrowBlock{1, 12};

// dw[o][k] += sum over samples [n_begin, n_end) and positions [q_begin, q_end) (multiples of 16, but q_end may
// be the last position) of dy[n][o][q] * columns[k][q], for the block of o in [o0, o0 + ROWS) and k in
// [k0, k0 + COLS) of one group. Rows and columns past the group's are computed on a clamped copy and dropped.
template <int ROWS, int COLS>
CONV_EXT_AVX512 void grad_weight_block(const float* grad_output, const float* input, float* grad_weight,
                                       const ConvGeometry& g, const ImplicitColumns& columns,
                                       const uint16_t* vector_lanes, int64_t group, int64_t groups,
                                       int64_t out_channels, int64_t o0, int64_t k0, int64_t n_begin, int64_t n_end,
                                       int64_t q_begin, int64_t q_end) {
  const int64_t group_out = out_channels / groups, group_channels = g.channels / groups;
  const int64_t depth = group_channels * columns.taps, positions = g.out_plane(), plane = g.height * g.width;
  int64_t o[ROWS], shift[COLS], tap[COLS];
  CONV_EXT_UNROLL for (int r = 0; r < ROWS; ++r) o[r] = std::min(o0 + r, group_out - 1);
  CONV_EXT_UNROLL for (int s = 0; s < COLS; ++s) {
    const int64_t k = std::min(k0 + s, depth - 1);
    shift[s] = columns.offsets[k];
    tap[s] = columns.tap_of_row[k];
  }
  __m512 sum[ROWS][COLS];
  CONV_EXT_UNROLL for (int r = 0; r < ROWS; ++r) {
    CONV_EXT_UNROLL for (int s = 0; s < COLS; ++s) sum[r][s] = _mm512_setzero_ps();
  }
  for (int64_t n = n_begin; n < n_end; ++n) {
    const float* dy = grad_output + (n * out_channels + group * group_out) * positions;
    const float* x = input + (n * g.channels + group * group_channels) * plane;
    for (int64_t q = q_begin; q < q_end; q += 16) {
      const __mmask16 inside = avx512::first_lanes(positions - q);
      const uint16_t* lanes = vector_lanes + (q / 16) * columns.taps;
      __m512 dy_row[ROWS];
      CONV_EXT_UNROLL for (int r = 0; r < ROWS; ++r) {
        dy_row[r] = _mm512_maskz_loadu_ps(inside, dy + o[r] * positions + q);
      }
      CONV_EXT_UNROLL for (int s = 0; s < COLS; ++s) {
        const __m512 x_row = _mm512_maskz_loadu_ps(lanes[tap[s]], x + shift[s] + q);
        CONV_EXT_UNROLL for (int r = 0; r < ROWS; ++r) sum[r][s] = _mm512_fmadd_ps(dy_row[r], x_row, sum[r][s]);
      }
    }
  }
  float totals[ROWS][COLS];
  CONV_EXT_UNROLL for (int r = 0; r < ROWS; ++r) {
    CONV_EXT_UNROLL for (int s = 0; s < COLS; ++s) totals[r][s] = lane_sum(sum[r][s]);
  }
  for (int64_t r = 0; r < ROWS && o0 + r < group_out; ++r) {
    for (int64_t s = 0; s < COLS && k0 + s < depth; ++s) {
      grad_weight[(group * group_out + o0 + r) * depth + k0 + s] += totals[r][s];
    }
  }
}

}  // namespace

bool use_implicit_conv2d(const at::Tensor& input, const ConvGeometry& g) {
  return input.scalar_type() == at::kFloat && avx512_gemm_enabled() && g.stride_h == 1 && g.stride_w == 1 &&
         g.out_w == g.width;
}

void implicit_conv2d_avx512(const float* input, const float* weight, const float* bias, float* output,
                            const ConvGeometry& g, int64_t groups, int64_t out_channels) {
  const int64_t group_channels = g.channels / groups, group_out = out_channels / groups;
  const int64_t positions = g.out_plane();
  if (g.batch == 0 || positions == 0) return;
  const ImplicitColumns columns(g, group_channels);
  const int64_t depth = group_channels * columns.taps, panels = (positions + kCols - 1) / kCols;
  // Tasks: (sample, group, panel), panels innermost so that a task's neighbours share the input planes.
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(group_out * depth * kCols, 1));
  at::parallel_for(0, g.batch * groups * panels, grain, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t panel = task % panels, group = (task / panels) % groups, n = task / (panels * groups);
      const int64_t first = panel * kCols;
      const ShiftedRows rows{input + (n * g.channels + group * group_channels) * g.height * g.width + first,
                             columns.offsets.data(), columns.tap_of_row.data(),
                             columns.tap_lanes.data() + panel * columns.taps};
      const StridedMatrix<const float> group_weight{weight + group * group_out * depth, depth, 1};
      const avx512::CBlock c{output + (n * out_channels + group * group_out) * positions + first, positions, {}};
      avx512::any_panel(group_out, depth, group_weight, rows, c, std::min(kCols, positions - first), false,
                        bias ? bias + group * group_out : nullptr);
    }
  });
}

void implicit_conv2d_grad_weight_avx512(const float* grad_output, const float* input, float* grad_weight,
                                        const ConvGeometry& g, int64_t groups, int64_t out_channels) {
  const int64_t group_channels = g.channels / groups, group_out = out_channels / groups;
  const int64_t positions = g.out_plane();
  const ImplicitColumns columns(g, group_channels);
  const int64_t depth = group_channels * columns.taps;
  std::fill(grad_weight, grad_weight + out_channels * depth, 0.0f);
  if (g.batch == 0 || positions == 0) return;
  // Blocks of (samples, positions) whose dy and input (~1 MiB) stay in L2 while every (o, k) block of dw
  // sums over them; the blocks add onto dw one after another, each dw element from one task: the result does
  // not depend on the thread count.
  const int64_t sample_bytes = (out_channels + g.channels) * positions * int64_t(sizeof(float));
  const int64_t block_bytes = int64_t{1} << 20;
  const int64_t samples_per_block = std::clamp<int64_t>(block_bytes / sample_bytes, 1, g.batch);
  const int64_t positions_per_block = samples_per_block > 1
      ? positions
      : std::max<int64_t>(16, block_bytes / ((out_channels + g.channels) * int64_t(sizeof(float))) / 16 * 16);
  const GradBlock block = group_out >= kWideBlock.rows ? kWideBlock : kNarrowBlock;
  const int64_t o_blocks = (group_out + block.rows - 1) / block.rows, k_blocks = (depth + block.cols - 1) / block.cols;
  const int64_t tasks = groups * o_blocks * k_blocks;
  const std::vector<uint16_t> vector_lanes = columns.vector_lanes();
  for (int64_t n = 0; n < g.batch; n += samples_per_block) {
    for (int64_t q = 0; q < positions; q += positions_per_block) {
      at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
        for (int64_t task = begin; task < end; ++task) {  // task = (group, o block, k block), k innermost
          const int64_t k_block = task % k_blocks, o_block = (task / k_blocks) % o_blocks;
          const auto kernel = block.rows == kWideBlock.rows ? grad_weight_block<kWideBlock.rows, kWideBlock.cols>
                                                            : grad_weight_block<kNarrowBlock.rows, kNarrowBlock.cols>;
          kernel(grad_output, input, grad_weight, g, columns, vector_lanes.data(), task / (k_blocks * o_blocks), groups,
                 out_channels, o_block * block.rows, k_block * block.cols, n, std::min(g.batch, n + samples_per_block),
                 q, std::min(positions, q + positions_per_block));
        }
      });
    }
  }
}

}  // namespace conv_ext::cpu

#else  // not x86-64 with GCC/Clang: no AVX-512 kernel, the tiled path runs every convolution

namespace conv_ext::cpu {

bool use_implicit_conv2d(const at::Tensor&, const ConvGeometry&) { return false; }

void implicit_conv2d_avx512(const float*, const float*, const float*, float*, const ConvGeometry&, int64_t,
                            int64_t) {
  TORCH_CHECK(false, "conv_ext: the AVX-512 implicit-GEMM convolution is not built for this CPU");
}

void implicit_conv2d_grad_weight_avx512(const float*, const float*, float*, const ConvGeometry&, int64_t, int64_t) {
  TORCH_CHECK(false, "conv_ext: the AVX-512 implicit-GEMM convolution is not built for this CPU");
}

}  // namespace conv_ext::cpu

#endif
