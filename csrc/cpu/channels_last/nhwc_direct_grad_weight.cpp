// The direct NHWC dw (nhwc_direct.h): dy and the input in NHWC memory, the sums of nhwc_direct_grad_weight_simd.inc
// once per instruction set into dw's (O, kh, kw, C) memory.
#include "cpu/channels_last/nhwc_direct.h"
#include "cpu/channels_last/nhwc_tensors.h"

#include <ATen/Parallel.h>

#include <algorithm>

#include "cpu/valid_range.h"

#define CONV_EXT_SIMD_BODY "cpu/channels_last/nhwc_direct_grad_weight_simd.inc"
#include "cpu/simd/simd_for_each_isa.h"

namespace conv_ext::cpu {

at::Tensor nhwc_direct_grad_weight(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                                   const ConvGeometry& g) {
  const at::Tensor dy = channels_last(grad_output), x = channels_last(input);
  const int64_t O = weight.size(0);
  // Zeros, then each chunk's sums added: dw as (O, kh, kw, C), a channels_last weight's memory.
  at::Tensor grad_weight = at::zeros({O, g.kernel_h, g.kernel_w, g.channels}, weight.options());
  CONV_EXT_SIMD_KERNEL(nhwc_direct_grad_weight)(dy.const_data_ptr<float>(), x.const_data_ptr<float>(),
                                                grad_weight.mutable_data_ptr<float>(), g, O);
  return grad_weight.permute({0, 3, 1, 2});
}

}  // namespace conv_ext::cpu
