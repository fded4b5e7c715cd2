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

namespace {

// The threads split the output channels, each walking every position for its own (no sums to add), unless a 1x1
// layer's input is large and no narrower than dy (O <= C): then each would read all of it from memory, and they
// split the output rows instead, each summing every channel over its own rows into a partial, added at the end (AMD
// EPYC Zen 4, 2 threads, 1x1 dw, channels_last, x torch's time, rows against channels: ResNet-50's 256->64 on 56x56
// at batch 8 / 32 1.14 / 1.13 against 1.30 / 1.28, 512->128 on 28x28 at 32 1.07 against 1.15, MobileNetV2's 144->24
// on 56x56 at 32 1.21 against 1.43; with 1.2-4.8 MiB of input a thread the channels did as well or better: 192->64
// and 384->64 on 14x14 at 32 1.07 / 1.10 against 1.12 / 1.15, EfficientNet's 1152->192 on 7x7 0.92 / 1.04 against
// 1.08 / 1.09). On 3x3 layers the two were level (ResNet's and VGG's with O <= C at batch 8 and 32: mean 0.99
// against 0.98).
constexpr int64_t kSplitRowsBytes = int64_t{4} << 20;  // of input a thread

}  // namespace

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
  // dw as (O, kh, kw, C), a channels_last weight's memory.
  const int64_t rows = g.batch * g.out_h, threads = at::get_num_threads();
  const bool split_rows = g.kernel_h * g.kernel_w == 1 && O <= g.channels && threads > 1 && rows > 1 &&
                          g.input_numel() * int64_t{sizeof(float)} >= threads * kSplitRowsBytes;
  at::Tensor grad_weight;
  if (split_rows) {
    const int64_t ranges = std::min(rows, threads);
    grad_weight = row_range_sums(rows, ranges, 1, {O, g.kernel_h, g.kernel_w, g.channels}, weight.options(),
                                 [&](float* partial, int64_t row_begin, int64_t row_end, int64_t) {
                                   CONV_EXT_SIMD_KERNEL(nhwc_direct_grad_weight)(
                                       dy.const_data_ptr<float>(), x.const_data_ptr<float>(), partial, g, O,
                                       row_begin, row_end, true);
                                 });
  } else {
    // Zeros, then each chunk's sums added.
    grad_weight = at::zeros({O, g.kernel_h, g.kernel_w, g.channels}, weight.options());
    CONV_EXT_SIMD_KERNEL(nhwc_direct_grad_weight)(dy.const_data_ptr<float>(), x.const_data_ptr<float>(),
                                                  grad_weight.mutable_data_ptr<float>(), g, O, 0, rows, false);
  }
  return grad_weight.permute({0, 3, 1, 2});
}

}  // namespace conv_ext::cpu
