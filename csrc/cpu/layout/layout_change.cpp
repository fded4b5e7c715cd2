// Layout changes between contiguous and channels_last memory (layout_change.h): a float32 tensor's samples
// transposed by layout_change_simd.inc once per instruction set.
#include "cpu/layout/layout_change.h"

#include <ATen/Parallel.h>

#include <algorithm>

#include "cpu/simd/simd_isa.h"

#define CONV_EXT_SIMD_BODY "cpu/layout/layout_change_simd.inc"
#include "cpu/simd/simd_for_each_isa.h"

namespace conv_ext::cpu {

at::Tensor in_layout(const at::Tensor& t, at::MemoryFormat format) {
  const bool to_channels_last = format == at::MemoryFormat::ChannelsLast;
  const at::MemoryFormat other = to_channels_last ? at::MemoryFormat::Contiguous : at::MemoryFormat::ChannelsLast;
  if (t.dim() != 4 || t.scalar_type() != at::kFloat || !simd_kernels_enabled() || t.is_contiguous(format) ||
      !t.is_contiguous(other) || t.numel() == 0) {
    return t.contiguous(format);
  }
  at::Tensor laid_out = at::empty(t.sizes(), t.options().memory_format(format));
  const int64_t channels = t.size(1), plane = t.size(2) * t.size(3);
  // A sample is a (C, H*W) matrix in NCHW memory and its transpose in NHWC memory.
  CONV_EXT_SIMD_KERNEL(transpose_samples)(t.const_data_ptr<float>(), laid_out.mutable_data_ptr<float>(), t.size(0),
                                          to_channels_last ? channels : plane, to_channels_last ? plane : channels);
  return laid_out;
}

}  // namespace conv_ext::cpu
