// Tensors in (N, H, W, C) memory for the kernels of this folder.
#pragma once

#include <ATen/ATen.h>

namespace conv_ext::cpu {

// `t` in channels_last memory (itself where it already is).
inline at::Tensor channels_last(const at::Tensor& t) { return t.contiguous(at::MemoryFormat::ChannelsLast); }

// An uninitialised channels_last tensor of these sizes, with `like`'s dtype and device.
inline at::Tensor new_channels_last(at::IntArrayRef sizes, const at::Tensor& like) {
  return at::empty(sizes, like.options().memory_format(at::MemoryFormat::ChannelsLast));
}

}  // namespace conv_ext::cpu
