// The bounds arithmetic of a window against the image: which outputs of a tap, and which taps of an output, read
// inside it. Shared by the tiled path's column rows, the depthwise loops and the channel-lanes kernels.
#pragma once

#include <algorithm>
#include <cstdint>

namespace conv_ext::cpu {

// The output columns [begin, end) whose tap w = ow*stride + offset falls inside [0, in_length).
struct ValidRange {
  int64_t begin, end;
};

inline ValidRange valid_outputs(int64_t out_length, int64_t in_length, int64_t stride, int64_t offset) {
  const int64_t first = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  const int64_t last = in_length - offset <= 0 ? 0 : (in_length - offset + stride - 1) / stride;
  const int64_t begin = std::min(first, out_length);
  return {begin, std::max(begin, std::min(last, out_length))};
}

// The taps [begin, end) of a kernel axis whose input index origin + tap*dilation falls inside [0, in_length),
// for an output whose window starts at `origin` (= o*stride - pad).
inline ValidRange valid_taps(int64_t origin, int64_t in_length, int64_t dilation, int64_t kernel) {
  const int64_t first = origin >= 0 ? 0 : (-origin + dilation - 1) / dilation;
  const int64_t last = origin >= in_length ? 0 : (in_length - 1 - origin) / dilation + 1;
  const int64_t begin = std::min(first, kernel);
  return {begin, std::max(begin, std::min(last, kernel))};
}

}  // namespace conv_ext::cpu
