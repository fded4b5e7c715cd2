// The depthwise forward on our SIMD layer (the body: depthwise_conv2d_simd.inc), once per instruction set.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu/depthwise/depthwise_conv2d.h"
#include "cpu/valid_range.h"

#define CONV_EXT_SIMD_BODY "cpu/depthwise/depthwise_conv2d_simd.inc"
#include "cpu/simd/simd_for_each_isa.h"

namespace conv_ext::cpu {

void depthwise_conv2d_simd(const float* input, const float* weight, const float* bias, float* output,
                           const ConvGeometry& g, int64_t groups, int64_t out_channels) {
  CONV_EXT_SIMD_KERNEL(depthwise_conv2d)(input, weight, bias, output, g, groups, out_channels);
}

}  // namespace conv_ext::cpu
