// dw of a depthwise layer at stride 2 on our SIMD layer (the body: depthwise_grad_weight_simd.inc), once per
// instruction set.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu/depthwise/depthwise_conv2d.h"

#define CONV_EXT_SIMD_BODY "cpu/depthwise/depthwise_grad_weight_simd.inc"
#include "cpu/simd/simd_for_each_isa.h"

namespace conv_ext::cpu {

void depthwise_grad_weight_stride2_simd(const float* grad_output, const float* input, float* grad_weight,
                                        const ConvGeometry& g, int64_t /*groups*/, int64_t /*out_channels*/) {
  CONV_EXT_SIMD_KERNEL(depthwise_grad_weight_stride2)(grad_output, input, grad_weight, g);
}

}  // namespace conv_ext::cpu
