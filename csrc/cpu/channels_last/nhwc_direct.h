// The direct forward on NHWC memory (nhwc_direct.cpp): no columns; a register block holds output channels in its
// lanes and any run of output positions in its rows, reading the NHWC input unpadded (the input itself where it is
// channels_last) and skipping the taps in the padding. float32 on our SIMD layer, groups 1, any stride, padding and
// dilation.
#pragma once

#include <ATen/ATen.h>

#include <optional>

#include "textbook/im2col.h"

namespace conv_ext::cpu {

// The forward: input (N, C, H, W) in any memory format, weight (O, C, kh, kw); returns the output in
// `output_format` (channels_last, or contiguous: each chunk of the NHWC result transposed into the planes).
at::Tensor nhwc_direct_conv2d(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                              const ConvGeometry& geometry, at::MemoryFormat output_format);

// dx: for stride 1 the same kernel on dy (transposed_geometry; its padding may be negative), in `output_format`;
// for a larger stride (dilation 1) by phases (grad_input_as_conv2d.h), each the kernel on dy writing every s-th
// pixel of dx, in channels_last memory.
at::Tensor nhwc_direct_grad_input(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                                  const ConvGeometry& geometry, at::MemoryFormat output_format);

// Which channels the direct dw puts in its vector lanes: the input channels where there are >= 32 (two vectors'
// worth), the output channels where there are under 16 input channels (a 3-channel stem) and >= 32 output channels.
// Between the two the exact-taps dw measured faster (the seed's 16->32 5x5 at 14 x 14, channels_last, batch 100,
// ms: 2.3 against 3.0 with the output channels in the lanes).
inline bool input_channels_in_lanes(int64_t channels) { return channels >= 32; }
inline bool output_channels_in_lanes(int64_t channels, int64_t out_channels) {
  return channels < 16 && out_channels >= 32;
}

// dw without columns (nhwc_direct_grad_weight.cpp): input channels in the lanes and a block of output channels in
// the rows, or with few input channels the other way round, summed over the output positions whose taps lie in the
// input. Returns (O, C, kh, kw), in channels_last memory where the input channels are in the lanes.
at::Tensor nhwc_direct_grad_weight(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                                   const ConvGeometry& geometry);

}  // namespace conv_ext::cpu
