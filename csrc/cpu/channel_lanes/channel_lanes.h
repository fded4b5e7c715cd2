// The kernels with the output channels in the vector lanes (float32 on our SIMD layer): the padded forward
// (padded_conv2d.cpp), the exact-taps forward (exact_taps_conv2d.cpp) and the exact-taps dw
// (exact_taps_grad_weight.cpp). Each runs any stride, padding, dilation and groups; a register block spans 16 or
// 32 output channels of a group, so the kernel table gives them groups of 16 output channels or more.
// Contiguous (N, C, H, W) input and (O, C/g, kh, kw) weight.
#pragma once

#include <cstdint>

#include "textbook/im2col.h"

namespace conv_ext::cpu {

// The forward over a zero-padded copy of the input, the columns read as broadcasts: writes the whole output.
void padded_conv2d_simd(const float* input, const float* weight, const float* bias, float* output,
                        const ConvGeometry& geometry, int64_t groups, int64_t out_channels);

// The forward with samples in the register rows, summing only the taps inside the image: writes the whole output.
void exact_taps_conv2d_simd(const float* input, const float* weight, const float* bias, float* output,
                            const ConvGeometry& geometry, int64_t groups, int64_t out_channels);

// The weight gradient the same way: writes the whole (O, C/g, kh, kw) grad_weight, one writer per element
// (deterministic and independent of the thread count).
void exact_taps_grad_weight_simd(const float* grad_output, const float* input, float* grad_weight,
                                 const ConvGeometry& geometry, int64_t groups, int64_t out_channels);

}  // namespace conv_ext::cpu
