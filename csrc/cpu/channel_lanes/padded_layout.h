// The zero-padded copy of the input that the padded forward reads (padded_conv2d_simd.inc): its layout, and how a
// plane is copied into it.
#pragma once

#include <algorithm>
#include <cstdint>

#include "textbook/im2col.h"

namespace conv_ext::cpu {

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
inline void pad_plane(const float* input, const ConvGeometry& g, const PaddedLayout& layout, int64_t n, int64_t c,
               float* to) {
  const float* from = input + (n * g.channels + c) * g.height * g.width;
  std::fill(to, to + layout.plane, 0.0f);
  for (int64_t h = 0; h < g.height; ++h) {
    std::copy(from + h * g.width, from + (h + 1) * g.width, to + (h + g.pad_h) * layout.width + g.pad_w);
  }
}

}  // namespace conv_ext::cpu
