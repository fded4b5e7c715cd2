// Implicit-GEMM convolution in float32 with AVX-512: the GEMM of im2col without the columns.
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
// consecutive origins, across output rows too, so a panel is any 32 consecutive positions ("flat" panels, no
// waste at row ends). Otherwise a panel is up to 32 outputs of one output row.
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
  if (input.scalar_type() != at::kFloat || !avx512_gemm_enabled() || g.stride_w > 2) return false;
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

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "avx512_micro_kernel.h"

namespace conv_ext::cpu {

namespace {

using avx512::kCols;

// The index tables of the implicit columns of one group (the same for every group and sample).
struct ImplicitColumns {
  bool flat;  // panels over the flattened output, else along output rows
  int64_t stride_w, taps, panels_per_row, panels;
  int64_t group_channels, plane;    // input channels per group; H*W
  std::vector<int64_t> tap_offsets; // per tap i*kw + j: offset(0, i, j) above
  std::vector<int64_t> offsets;     // per column row (c, i, j): its shift, offset(c, i, j) above
  std::vector<int32_t> tap_of_row;  // per column row: its tap i*kw + j
  // [panel * taps + tap]: per vector v (outputs [16v, 16v + 16) of the panel), the input lanes to load in bits
  // [32v, 32v + 32): step 1, bit 32v + l for output lane l; step 2, bit 32v + 2l (two loads of 16).
  std::vector<uint64_t> load_lanes;
  // Per panel: its first output, as an offset in the output plane; its origin in the input plane; its outputs.
  std::vector<int64_t> output_offset, input_offset, width;

  ImplicitColumns(const ConvGeometry& g, int64_t group_channels)
      : flat(flat_panels(g)),
        stride_w(g.stride_w),
        taps(g.kernel_h * g.kernel_w),
        panels_per_row((g.out_w + kCols - 1) / kCols),
        panels(flat ? (g.out_plane() + kCols - 1) / kCols : g.out_h * panels_per_row),
        group_channels(group_channels),
        plane(g.height * g.width),
        tap_offsets(taps),
        offsets(group_channels * taps),
        tap_of_row(group_channels * taps),
        load_lanes(panels * taps, 0),
        output_offset(panels),
        input_offset(panels),
        width(panels) {
    for (int64_t panel = 0; panel < panels; ++panel) {
      const int64_t oh = panel / panels_per_row, ow = (panel % panels_per_row) * kCols;
      output_offset[panel] = flat ? panel * kCols : oh * g.out_w + ow;
      input_offset[panel] = flat ? panel * kCols : oh * g.stride_h * g.width + ow * g.stride_w;
      width[panel] = std::min(kCols, (flat ? g.out_plane() : (oh + 1) * g.out_w) - output_offset[panel]);
    }
    for (int64_t i = 0; i < g.kernel_h; ++i) {
      for (int64_t j = 0; j < g.kernel_w; ++j) {
        tap_offsets[i * g.kernel_w + j] = (i * g.dilation_h - g.pad_h) * g.width + (j * g.dilation_w - g.pad_w);
      }
    }
    for (int64_t row = 0; row < group_channels * taps; ++row) {
      tap_of_row[row] = static_cast<int32_t>(row % taps);
      offsets[row] = row / taps * plane + tap_offsets[row % taps];
    }
    // One writer per panel: built in parallel (positions x taps entries; large images have many).
    at::parallel_for(0, panels, 16, [&](int64_t begin, int64_t end) {
      for (int64_t panel = begin; panel < end; ++panel) {
        for (int64_t lane = 0; lane < width[panel]; ++lane) {
          const int64_t q = output_offset[panel] + lane, oh = q / g.out_w, ow = q % g.out_w;
          const int bit = static_cast<int>(32 * (lane / 16) + stride_w * (lane % 16));
          for (int64_t i = 0; i < g.kernel_h; ++i) {
            for (int64_t j = 0; j < g.kernel_w; ++j) {
              const bool inside = in_range(oh * g.stride_h - g.pad_h + i * g.dilation_h, g.height) &&
                                  in_range(ow * g.stride_w - g.pad_w + j * g.dilation_w, g.width);
              if (inside) load_lanes[panel * taps + i * g.kernel_w + j] |= uint64_t{1} << bit;
            }
          }
        }
      }
    });
  }
};

// The masks of the loads of one vector's run (STEP loads of 16 input lanes), from its 32 bits of load lanes.
template <int STEP>
struct RunMask {
  __mmask16 load[STEP];
};

template <int STEP>
CONV_EXT_AVX512_INLINE RunMask<STEP> run_mask(uint32_t lanes) {
  RunMask<STEP> mask;
  for (int s = 0; s < STEP; ++s) mask.load[s] = __mmask16(lanes >> (16 * s));
  return mask;
}

// The 16 outputs of one vector of a column row: input lanes from `source` (step STEP) under the vector's load
// masks. Lanes outside the masks are neither read nor faulted on: the run may start before the plane.
template <int STEP>
CONV_EXT_AVX512_INLINE __m512 load_run(const float* source, const RunMask<STEP>& mask) {
  if constexpr (STEP == 1) {
    return _mm512_maskz_loadu_ps(mask.load[0], source);
  } else {
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512 low = _mm512_maskz_loadu_ps(mask.load[0], source);
    const __m512 high = _mm512_maskz_loadu_ps(mask.load[1], source + 16);
    return _mm512_permutex2var_ps(low, even, high);
  }
}

// A panel's columns for the micro-kernel, in the order (tap, channel): step p = tap * group_channels + c of the
// sum reads the run at origin + tap_offsets[tap] + c * plane under the tap's lanes. A is the weight packed in the
// same order (pack_weight_tap_major).
template <int STEP>
struct TapRows {
  const float* origin;         // the group's first input plane, at the panel's origin
  const ImplicitColumns& columns;
  const uint64_t* load_lanes;  // ImplicitColumns::load_lanes of this panel

  template <int ROWS, int VECTORS>
  CONV_EXT_AVX512_INLINE void sum_into(int64_t, const float* a, int64_t a_rs, int64_t a_cs,
                                       __m512 (&block)[ROWS][VECTORS]) const {
    const int64_t channels = columns.group_channels, plane = columns.plane;
    for (int64_t tap = 0; tap < columns.taps; ++tap, a += channels * a_cs) {
      const uint64_t lanes = load_lanes[tap];
      if (lanes == 0) continue;  // outside the image for every output of the panel: adds zero
      const float* source = origin + columns.tap_offsets[tap];
      RunMask<STEP> mask[VECTORS];
      CONV_EXT_UNROLL for (int v = 0; v < VECTORS; ++v) mask[v] = run_mask<STEP>(uint32_t(lanes >> (32 * v)));
      for (int64_t c = 0; c < channels; ++c, source += plane) {
        __m512 row[VECTORS];
        CONV_EXT_UNROLL for (int v = 0; v < VECTORS; ++v) row[v] = load_run<STEP>(source + 16 * STEP * v, mask[v]);
        avx512::fma_step<ROWS, VECTORS>(block, a + c * a_cs, a_rs, row);
      }
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

// dw's register blocks: ROWS output channels x COLS column rows, summed over 16 outputs per lane; 4 x 6 (10
// loads per 24 FMAs) where a group has 4 output channels or more, 1 x 12 (depthwise: one per group).
struct GradBlock {
  int64_t rows, cols;
};
constexpr GradBlock kWideBlock{4, 6}, kNarrowBlock{1, 12};

// A block of dw's work: samples [n_begin, n_end) x panels [panel_begin, panel_end).
struct SumRange {
  int64_t n_begin, n_end, panel_begin, panel_end;
};

// dw[o][k] += sum over the range's samples and outputs of dy[n][o][q] * columns[k][q], for the block of o in
// [o0, o0 + ROWS) and k in [k0, k0 + COLS) of one group. Rows and columns past the group's are computed on a
// clamped copy and dropped.
template <int ROWS, int COLS>
CONV_EXT_AVX512 void grad_weight_block(const float* grad_output, const float* input, float* grad_weight,
                                       const ConvGeometry& g, const ImplicitColumns& columns, int64_t group,
                                       int64_t groups, int64_t out_channels, int64_t o0, int64_t k0,
                                       const SumRange& range) {
  const int64_t group_out = out_channels / groups, group_channels = g.channels / groups;
  const int64_t depth = group_channels * columns.taps, positions = g.out_plane(), plane = columns.plane;
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
  // Samples innermost: a vector's load masks and shifts are the same for every sample, so they are set once.
  const int64_t dy_sample = out_channels * positions, x_sample = g.channels * plane;
  const float* dy_group = grad_output + (range.n_begin * out_channels + group * group_out) * positions;
  const float* x_group = input + (range.n_begin * g.channels + group * group_channels) * plane;
  for (int64_t panel = range.panel_begin; panel < range.panel_end; ++panel) {
    const int64_t width = columns.width[panel];
    const uint64_t* lanes = columns.load_lanes.data() + panel * columns.taps;
    for (int64_t v = 0; 16 * v < width; ++v) {
      const __mmask16 inside = avx512::first_lanes(width - 16 * v);
      RunMask<1> mask[COLS];
      CONV_EXT_UNROLL for (int s = 0; s < COLS; ++s) mask[s] = run_mask<1>(uint32_t(lanes[tap[s]] >> (32 * v)));
      const float* dy = dy_group + columns.output_offset[panel] + 16 * v;
      const float* x = x_group + columns.input_offset[panel] + 16 * v;
      for (int64_t n = range.n_begin; n < range.n_end; ++n, dy += dy_sample, x += x_sample) {
        __m512 dy_row[ROWS];
        CONV_EXT_UNROLL for (int r = 0; r < ROWS; ++r) dy_row[r] = _mm512_maskz_loadu_ps(inside, dy + o[r] * positions);
        CONV_EXT_UNROLL for (int s = 0; s < COLS; ++s) {
          const __m512 x_row = load_run<1>(x + shift[s], mask[s]);
          CONV_EXT_UNROLL for (int r = 0; r < ROWS; ++r) sum[r][s] = _mm512_fmadd_ps(dy_row[r], x_row, sum[r][s]);
        }
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

// `weight` packed by pack_weight_tap_major.
template <int STEP>
void forward_panels(const float* input, const float* weight, const float* bias, float* output, const ConvGeometry& g,
             int64_t groups, int64_t out_channels, const ImplicitColumns& columns) {
  const int64_t group_channels = g.channels / groups, group_out = out_channels / groups;
  const int64_t depth = group_channels * columns.taps, panels = columns.panels;
  // Tasks: (sample, group, panel), panels innermost so that a task's neighbours share the input planes.
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(group_out * depth * kCols, 1));
  at::parallel_for(0, g.batch * groups * panels, grain, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t panel = task % panels, group = (task / panels) % groups, n = task / (panels * groups);
      const TapRows<STEP> rows{
          input + (n * g.channels + group * group_channels) * g.height * g.width + columns.input_offset[panel],
          columns, columns.load_lanes.data() + panel * columns.taps};
      const StridedMatrix<const float> group_weight{weight + group * group_out * depth, 1, group_out};
      const avx512::CBlock c{
          output + (n * out_channels + group * group_out) * g.out_plane() + columns.output_offset[panel],
          g.out_plane(), {}};
      avx512::any_panel(group_out, depth, group_weight, rows, c, columns.width[panel], false,
                        bias ? bias + group * group_out : nullptr);
    }
  });
}

void grad_weight_panels(const float* grad_output, const float* input, float* grad_weight, const ConvGeometry& g,
                 int64_t groups, int64_t out_channels, const ImplicitColumns& columns) {
  const int64_t group_channels = g.channels / groups, group_out = out_channels / groups;
  const int64_t depth = group_channels * columns.taps, positions = g.out_plane();
  // Blocks of (samples, panels) whose dy and input (~1 MiB) stay in L2 while every (o, k) block of dw sums over
  // them; the blocks add onto dw one after another, each dw element from one task: the result does not depend
  // on the thread count.
  const int64_t sample_bytes =
      (out_channels * positions + g.channels * g.height * g.width) * int64_t(sizeof(float));
  const int64_t block_bytes = int64_t{1} << 20;
  const int64_t samples_per_block = std::clamp<int64_t>(block_bytes / std::max<int64_t>(sample_bytes, 1), 1, g.batch);
  const int64_t panels_per_block = samples_per_block > 1
      ? columns.panels
      : std::clamp<int64_t>(columns.panels * block_bytes / std::max<int64_t>(sample_bytes, 1), 1, columns.panels);
  const GradBlock block = group_out >= kWideBlock.rows ? kWideBlock : kNarrowBlock;
  const int64_t o_blocks = (group_out + block.rows - 1) / block.rows, k_blocks = (depth + block.cols - 1) / block.cols;
  const int64_t tasks = groups * o_blocks * k_blocks;
  const auto kernel = block.rows == kWideBlock.rows ? grad_weight_block<kWideBlock.rows, kWideBlock.cols>
                                                    : grad_weight_block<kNarrowBlock.rows, kNarrowBlock.cols>;
  for (int64_t n = 0; n < g.batch; n += samples_per_block) {
    for (int64_t panel = 0; panel < columns.panels; panel += panels_per_block) {
      const SumRange range{n, std::min(g.batch, n + samples_per_block), panel,
                           std::min(columns.panels, panel + panels_per_block)};
      at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
        for (int64_t task = begin; task < end; ++task) {  // task = (group, o block, k block), k innermost
          const int64_t k_block = task % k_blocks, o_block = (task / k_blocks) % o_blocks;
          kernel(grad_output, input, grad_weight, g, columns, task / (k_blocks * o_blocks), groups, out_channels,
                 o_block * block.rows, k_block * block.cols, range);
        }
      });
    }
  }
}

}  // namespace

void implicit_conv2d_avx512(const float* input, const float* weight, const float* bias, float* output,
                            const ConvGeometry& g, int64_t groups, int64_t out_channels) {
  if (g.batch == 0 || g.out_plane() == 0) return;
  const ImplicitColumns columns(g, g.channels / groups);
  const std::vector<float> packed =
      pack_weight_tap_major(weight, groups, out_channels, columns.group_channels, columns.taps);
  if (g.stride_w == 1) {
    forward_panels<1>(input, packed.data(), bias, output, g, groups, out_channels, columns);
  } else {
    forward_panels<2>(input, packed.data(), bias, output, g, groups, out_channels, columns);
  }
}

void implicit_conv2d_grad_weight_avx512(const float* grad_output, const float* input, float* grad_weight,
                                        const ConvGeometry& g, int64_t groups, int64_t out_channels) {
  TORCH_CHECK(g.stride_w == 1, "conv_ext: the implicit-GEMM weight gradient reads the input rows with step 1");
  const int64_t numel = out_channels * (g.channels / groups) * g.kernel_h * g.kernel_w;
  std::fill(grad_weight, grad_weight + numel, 0.0f);
  if (numel == 0 || g.batch == 0 || g.out_plane() == 0) return;
  grad_weight_panels(grad_output, input, grad_weight, g, groups, out_channels, ImplicitColumns(g, g.channels / groups));
}

}  // namespace conv_ext::cpu

#else  // not x86-64 with GCC/Clang: use_implicit_conv2d() is false (avx512_gemm_enabled() is)

namespace conv_ext::cpu {

void implicit_conv2d_avx512(const float*, const float*, const float*, float*, const ConvGeometry&, int64_t,
                            int64_t) {
  TORCH_CHECK(false, "conv_ext: the AVX-512 implicit-GEMM convolution is not built for this CPU");
}

void implicit_conv2d_grad_weight_avx512(const float*, const float*, float*, const ConvGeometry&, int64_t, int64_t) {
  TORCH_CHECK(false, "conv_ext: the AVX-512 implicit-GEMM convolution is not built for this CPU");
}

}  // namespace conv_ext::cpu

#endif
