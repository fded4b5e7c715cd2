// Changes between the two memory formats of a 4-D tensor, contiguous (N, C, H, W) and channels_last (N, H, W, C),
// for the kernels that read one and are handed the other.
#pragma once

#include <ATen/ATen.h>

namespace conv_ext::cpu {

// `t` in `format`'s memory (contiguous or channels_last): itself where it already is; a float32 tensor laid out in
// the other format by our SIMD transposes, sample by sample, in tiles; anything else as Tensor::contiguous(format)
// does. ATen's copy between the two formats ran at about a third of a plain copy's speed (AVX-512, Intel Xeon, 2
// threads, 8 x 64 x 56 x 56: 0.72 ms against a clone's 0.27).
at::Tensor in_layout(const at::Tensor& t, at::MemoryFormat format);

}  // namespace conv_ext::cpu
