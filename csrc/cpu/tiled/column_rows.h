// Row-at-a-time im2col / col2im for the CPU: the lowering of im2col.h organised for a cache and a vector
// unit. One "column row" is the kernel tap (c, i, j) of one sample over a range of output rows [oh_begin,
// oh_end): whole output rows are copied (contiguous when stride_w == 1) with zero fill at the borders, and
// added back the same way. Callers split work over rows or planes so every element has one writer, in a fixed
// order: the results are deterministic.
#pragma once

#include <algorithm>
#include <cstdint>

#include "cpu/valid_range.h"
#include "textbook/im2col.h"

namespace conv_ext::cpu {

// Tap (i, j) of column row `row` = (c*kh + i)*kw + j.
struct Tap {
  int64_t c, i, j;
};

inline Tap tap_of_row(int64_t row, const ConvGeometry& g) {
  return {row / (g.kernel_h * g.kernel_w), (row / g.kernel_w) % g.kernel_h, row % g.kernel_w};
}

// out[(oh - oh_begin)*Wo + ow] = plane_c[h, w] for the tap of `row`; `sample` points at one sample (C, H, W).
template <typename scalar_t>
void im2col_row(const scalar_t* sample, scalar_t* out, int64_t row, int64_t oh_begin, int64_t oh_end,
                const ConvGeometry& g) {
  const Tap t = tap_of_row(row, g);
  const scalar_t* plane = sample + t.c * g.height * g.width;
  const int64_t w_offset = t.j * g.dilation_w - g.pad_w;
  const ValidRange cols = valid_outputs(g.out_w, g.width, g.stride_w, w_offset);
  if (g.stride_h == 1 && g.stride_w == 1 && g.width == g.out_w) {
    // Consecutive output rows read consecutive input rows of the same width ('same' padding): the valid rows
    // are one contiguous copy, shifted by the tap's offset; then the border columns, which that copy filled
    // from the neighbouring rows, are zeroed.
    const ValidRange rows = valid_outputs(oh_end, g.height, 1, t.i * g.dilation_h - g.pad_h);
    const int64_t first = std::max(rows.begin, oh_begin), last = std::max(first, rows.end);
    const int64_t h_first = first + t.i * g.dilation_h - g.pad_h;
    std::fill(out, out + (first - oh_begin) * g.out_w, scalar_t(0));
    scalar_t* block = out + (first - oh_begin) * g.out_w;
    // Source [h_first*W + w_offset, ...) clipped to the plane; what the clip leaves out is border anyway.
    const int64_t src_begin = h_first * g.width + w_offset, src_end = src_begin + (last - first) * g.width;
    const int64_t copy_begin = std::max<int64_t>(src_begin, 0), copy_end = std::min(src_end, g.height * g.width);
    if (copy_end > copy_begin) std::copy(plane + copy_begin, plane + copy_end, block + (copy_begin - src_begin));
    for (int64_t r = 0; r < last - first; ++r) {
      std::fill(block + r * g.out_w, block + r * g.out_w + cols.begin, scalar_t(0));
      std::fill(block + r * g.out_w + cols.end, block + (r + 1) * g.out_w, scalar_t(0));
    }
    std::fill(block + (last - first) * g.out_w, out + (oh_end - oh_begin) * g.out_w, scalar_t(0));
    return;
  }
  for (int64_t oh = oh_begin; oh < oh_end; ++oh, out += g.out_w) {
    const int64_t h = oh * g.stride_h - g.pad_h + t.i * g.dilation_h;
    if (!in_range(h, g.height)) {
      std::fill(out, out + g.out_w, scalar_t(0));
      continue;
    }
    const scalar_t* src = plane + h * g.width;
    std::fill(out, out + cols.begin, scalar_t(0));
    if (g.stride_w == 1) {
      std::copy(src + cols.begin + w_offset, src + cols.end + w_offset, out + cols.begin);
    } else if (g.stride_w == 2) {  // the common stride, as a constant: the compiler vectorises it with shuffles
      for (int64_t ow = cols.begin; ow < cols.end; ++ow) out[ow] = src[ow * 2 + w_offset];
    } else {
      for (int64_t ow = cols.begin; ow < cols.end; ++ow) out[ow] = src[ow * g.stride_w + w_offset];
    }
    std::fill(out + cols.end, out + g.out_w, scalar_t(0));
  }
}

// plane[h, w] += in[(oh - oh_begin)*Wo + ow] for the tap (i, j) of `row` (the plane of that row's channel).
template <typename acc_t, typename scalar_t>
void col2im_row_add(acc_t* plane, const scalar_t* in, int64_t row, int64_t oh_begin, int64_t oh_end,
                    const ConvGeometry& g) {
  const Tap t = tap_of_row(row, g);
  const int64_t w_offset = t.j * g.dilation_w - g.pad_w;
  const ValidRange cols = valid_outputs(g.out_w, g.width, g.stride_w, w_offset);
  for (int64_t oh = oh_begin; oh < oh_end; ++oh, in += g.out_w) {
    const int64_t h = oh * g.stride_h - g.pad_h + t.i * g.dilation_h;
    if (!in_range(h, g.height)) continue;
    acc_t* dst = plane + h * g.width;
    if (g.stride_w == 1) {
      for (int64_t ow = cols.begin; ow < cols.end; ++ow) dst[ow + w_offset] += acc_t(in[ow]);
    } else if (g.stride_w == 2) {  // as in im2col_row
      for (int64_t ow = cols.begin; ow < cols.end; ++ow) dst[ow * 2 + w_offset] += acc_t(in[ow]);
    } else {
      for (int64_t ow = cols.begin; ow < cols.end; ++ow) dst[ow * g.stride_w + w_offset] += acc_t(in[ow]);
    }
  }
}

}  // namespace conv_ext::cpu
