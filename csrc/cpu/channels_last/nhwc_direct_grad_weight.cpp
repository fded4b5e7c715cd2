// The direct NHWC dw (nhwc_direct.h): dy and the input in NHWC memory, the sums of nhwc_direct_grad_weight_simd.inc
// once per instruction set into dw's (O, kh, kw, C) memory, or with few input channels into (kh, kw, C, O).
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
  if (!input_channels_in_lanes(g.channels)) {
    // The output channels in the lanes: dwT (kh, kw, C, O), one partial per range of output rows, added in range
    // order (deterministic for a thread count).
    const int64_t rows = g.batch * g.out_h;
    const int64_t ranges = std::max<int64_t>(1, std::min<int64_t>(rows, at::get_num_threads()));
    const at::Tensor sums = row_range_sums(
        rows, ranges, 1, {g.kernel_h, g.kernel_w, g.channels, O}, weight.options(),
        [&](float* partial, int64_t row_begin, int64_t row_end, int64_t) {
          CONV_EXT_SIMD_KERNEL(nhwc_lanes_grad_weight)(dy.const_data_ptr<float>(), x.const_data_ptr<float>(), partial,
                                                       g, O, row_begin, row_end);
        });
    return sums.permute({3, 2, 0, 1});
  }
  // Zeros, then each chunk's sums added: dw as (O, kh, kw, C), a channels_last weight's memory.
  at::Tensor grad_weight = at::zeros({O, g.kernel_h, g.kernel_w, g.channels}, weight.options());
  CONV_EXT_SIMD_KERNEL(nhwc_direct_grad_weight)(dy.const_data_ptr<float>(), x.const_data_ptr<float>(),
                                                grad_weight.mutable_data_ptr<float>(), g, O);
  return grad_weight.permute({0, 3, 1, 2});
}

}  // namespace conv_ext::cpu
