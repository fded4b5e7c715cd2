// Tensors in (N, H, W, C) memory for the kernels of this folder.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdint>
#include <vector>

#include "cpu/layout/layout_change.h"

namespace conv_ext::cpu {

// `t` in channels_last memory (itself where it already is).
inline at::Tensor channels_last(const at::Tensor& t) { return in_layout(t, at::MemoryFormat::ChannelsLast); }

// An uninitialised channels_last tensor of these sizes, with `like`'s dtype and device.
inline at::Tensor new_channels_last(at::IntArrayRef sizes, const at::Tensor& like) {
  return at::empty(sizes, like.options().memory_format(at::MemoryFormat::ChannelsLast));
}

// A dw summed over output rows [0, rows) split into `ranges` contiguous ranges, each summed into its own zeroed
// float partial of `sizes`, and the partials added in range order (deterministic for a range count). The tasks are
// (range, slab), `slabs` a range: sum(partial, row_begin, row_end, slab) adds one task's part.
template <typename Sum>
at::Tensor row_range_sums(int64_t rows, int64_t ranges, int64_t slabs, at::IntArrayRef sizes,
                          const at::TensorOptions& options, const Sum& sum) {
  std::vector<int64_t> shape{ranges};
  shape.insert(shape.end(), sizes.begin(), sizes.end());
  const at::Tensor partials = at::zeros(shape, options);
  float* const data = partials.mutable_data_ptr<float>();
  at::parallel_for(0, ranges * slabs, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t range = task / slabs;
      sum(data + range * partials.stride(0), rows * range / ranges, rows * (range + 1) / ranges, task % slabs);
    }
  });
  return ranges == 1 ? partials[0] : partials.sum(0);
}

}  // namespace conv_ext::cpu
