// dx of a depthwise layer at stride 2 on our SIMD layer (the body: depthwise_grad_input_simd.inc), once per
// instruction set.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu/depthwise/depthwise_conv2d.h"

#define CONV_EXT_SIMD_BODY "cpu/depthwise/depthwise_grad_input_simd.inc"
#include "cpu/simd/simd_for_each_isa.h"

namespace conv_ext::cpu {

void depthwise_grad_input_stride2_simd(const float* grad_output, const float* weight, float* grad_input,
                                       const ConvGeometry& g) {
  CONV_EXT_SIMD_KERNEL(depthwise_grad_input_stride2)(grad_output, weight, grad_input, g);
}

}  // namespace conv_ext::cpu
