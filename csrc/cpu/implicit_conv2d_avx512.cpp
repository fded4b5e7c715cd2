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

// Row p = (c, i, j) of the panel's columns: the input at origin + offsets[p], lanes tap_lanes[taps[p]].
struct ShiftedRows {
  const float* origin;        // the group's first input plane, at the panel's first output position
  const int64_t* offsets;     // per column row: c*H*W + (i*d_h - p_h)*W + (j*d_w - p_w)
  const int32_t* taps;        // per column row: its tap i*kw + j
  const uint32_t* tap_lanes;  // per tap: bit l set when the tap of output position (first + l) is in the image

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

}  // namespace

bool use_implicit_conv2d(const at::Tensor& input, const ConvGeometry& g) {
  return input.scalar_type() == at::kFloat && avx512_gemm_enabled() && g.stride_h == 1 && g.stride_w == 1 &&
         g.out_w == g.width;
}

void implicit_conv2d_avx512(const float* input, const float* weight, const float* bias, float* output,
                            const ConvGeometry& g, int64_t groups, int64_t out_channels) {
  const int64_t taps = g.kernel_h * g.kernel_w, group_channels = g.channels / groups;
  const int64_t group_out = out_channels / groups, depth = group_channels * taps;
  const int64_t plane = g.height * g.width, positions = g.out_plane();
  if (g.batch == 0 || positions == 0) return;
  std::vector<int64_t> offsets(depth);
  std::vector<int32_t> tap_of_row(depth);
  for (int64_t c = 0; c < group_channels; ++c) {
    for (int64_t i = 0; i < g.kernel_h; ++i) {
      for (int64_t j = 0; j < g.kernel_w; ++j) {
        const int64_t row = (c * g.kernel_h + i) * g.kernel_w + j;
        offsets[row] = c * plane + (i * g.dilation_h - g.pad_h) * g.width + (j * g.dilation_w - g.pad_w);
        tap_of_row[row] = static_cast<int32_t>(i * g.kernel_w + j);
      }
    }
  }
  const int64_t panels = (positions + kCols - 1) / kCols;
  std::vector<uint32_t> tap_lanes(panels * taps, 0);
  for (int64_t q = 0; q < positions; ++q) {
    const int64_t oh = q / g.out_w, ow = q % g.out_w;
    for (int64_t i = 0; i < g.kernel_h; ++i) {
      for (int64_t j = 0; j < g.kernel_w; ++j) {
        if (in_range(oh + i * g.dilation_h - g.pad_h, g.height) && in_range(ow + j * g.dilation_w - g.pad_w, g.width)) {
          tap_lanes[(q / kCols) * taps + i * g.kernel_w + j] |= uint32_t{1} << (q % kCols);
        }
      }
    }
  }
  // Tasks: (sample, group, panel), panels innermost so that a task's neighbours share the input planes.
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(group_out * depth * kCols, 1));
  at::parallel_for(0, g.batch * groups * panels, grain, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t panel = task % panels, group = (task / panels) % groups, n = task / (panels * groups);
      const int64_t first = panel * kCols;
      const ShiftedRows rows{input + (n * g.channels + group * group_channels) * plane + first, offsets.data(),
                             tap_of_row.data(), tap_lanes.data() + panel * taps};
      const StridedMatrix<const float> group_weight{weight + group * group_out * depth, depth, 1};
      const avx512::CBlock c{output + (n * out_channels + group * group_out) * positions + first, positions, {}};
      avx512::any_panel(group_out, depth, group_weight, rows, c, std::min(kCols, positions - first), false,
                        bias ? bias + group * group_out : nullptr);
    }
  });
}

}  // namespace conv_ext::cpu

#else  // not x86-64 with GCC/Clang: no AVX-512 kernel, the tiled path runs every convolution

namespace conv_ext::cpu {

bool use_implicit_conv2d(const at::Tensor&, const ConvGeometry&) { return false; }

void implicit_conv2d_avx512(const float*, const float*, const float*, float*, const ConvGeometry&, int64_t,
                            int64_t) {
  TORCH_CHECK(false, "conv_ext: the AVX-512 implicit-GEMM convolution is not built for this CPU");
}

}  // namespace conv_ext::cpu

#endif
