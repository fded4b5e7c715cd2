// Depthwise convolutions on channels_last memory (nhwc_depthwise.h): the tensors laid out for the kernels (the
// weight tap-major), the kernels of nhwc_depthwise_simd.inc once per instruction set, and dw's partial sums per
// range of rows added in range order (deterministic for a thread count).
#include "cpu/channels_last/nhwc_depthwise.h"
#include "cpu/channels_last/nhwc_tensors.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "cpu/grad_input/grad_input_as_conv2d.h"
#include "cpu/simd/streamed_output.h"
#include "cpu/valid_range.h"
#include "ops/conv2d_args.h"

namespace conv_ext::cpu {
namespace {

// The width of the slabs of channels that the forward and dw split the work into, besides rows of the output: the
// whole of C where there are rows enough for 4 tasks a thread, else a multiple of 64 channels (a register block)
// that makes up the rest (at batch 1 a 7x7 plane has 7 rows for the threads to share; 1152 channels have 18 blocks).
int64_t channel_slab(int64_t rows, int64_t channels) {
  const int64_t tasks = 4 * at::get_num_threads(), blocks = (channels + 63) / 64;
  const int64_t slabs = std::clamp<int64_t>((tasks + rows - 1) / std::max<int64_t>(rows, 1), 1, blocks);
  return (blocks + slabs - 1) / slabs * 64;
}

}  // namespace
}  // namespace conv_ext::cpu

#define CONV_EXT_SIMD_BODY "cpu/channels_last/nhwc_depthwise_simd.inc"
#include "cpu/simd/simd_for_each_isa.h"

namespace conv_ext::cpu {

namespace {

// The weight (C, 1, kh, kw) as (kh, kw, C): a tap's channels contiguous.
at::Tensor tap_major(const at::Tensor& weight) { return weight.permute({2, 3, 0, 1}).contiguous(); }

}  // namespace

at::Tensor nhwc_depthwise_conv2d(const at::Tensor& input_arg, const at::Tensor& weight,
                                 const std::optional<at::Tensor>& bias, const ConvGeometry& g) {
  const at::Tensor weight_taps = tap_major(weight);
  if (depthwise_slides(g) && input_arg.is_contiguous() &&
      !input_arg.is_contiguous(at::MemoryFormat::ChannelsLast)) {  // NCHW memory, read as it is
    at::Tensor output = at::empty({g.batch, g.channels, g.out_h, g.out_w}, input_arg.options());
    if (output.numel() == 0) return output;
    CONV_EXT_SIMD_KERNEL(nchw_depthwise_conv2d)(input_arg.const_data_ptr<float>(), weight_taps.const_data_ptr<float>(),
                                                bias ? bias->const_data_ptr<float>() : nullptr,
                                                output.mutable_data_ptr<float>(), g);
    return output;
  }
  const at::Tensor input = channels_last(input_arg);
  at::Tensor output = new_channels_last({g.batch, g.channels, g.out_h, g.out_w}, input);
  if (output.numel() == 0) return output;
  CONV_EXT_SIMD_KERNEL(nhwc_depthwise_conv2d)(input.const_data_ptr<float>(), weight_taps.const_data_ptr<float>(),
                                              bias ? bias->const_data_ptr<float>() : nullptr,
                                              output.mutable_data_ptr<float>(), g,
                                              channel_slab(g.batch * g.out_h, g.channels));
  return output;
}

std::pair<at::Tensor, at::Tensor> nhwc_depthwise_conv2d_backward(const at::Tensor& grad_output_arg,
                                                                 const at::Tensor& input_arg, const at::Tensor& weight,
                                                                 const ConvGeometry& g, bool need_input,
                                                                 bool need_weight) {
  // The input only for dw (dx takes only its sizes): a contiguous input's layout change is a copy of the whole of it.
  const at::Tensor input = need_weight ? channels_last(input_arg) : input_arg;
  const at::Tensor grad_output = channels_last(grad_output_arg);
  at::Tensor grad_input = unrequested_output(input), grad_weight = unrequested_output(input);
  if (need_input) {
    grad_input = new_channels_last(input.sizes(), input);
    if (grad_output.numel() == 0) {
      grad_input.zero_();
    } else if (g.stride_h == 1 && g.stride_w == 1) {
      // The convolution of dy with the weight flipped in (i, j) (transposed_geometry; depthwise: no transpose of
      // channels).
      const at::Tensor flipped_taps = tap_major(weight.flip({2, 3}));
      const ConvGeometry t = transposed_geometry(g, g.channels);
      CONV_EXT_SIMD_KERNEL(nhwc_depthwise_conv2d)(grad_output.const_data_ptr<float>(),
                                                  flipped_taps.const_data_ptr<float>(), nullptr,
                                                  grad_input.mutable_data_ptr<float>(), t,
                                                  channel_slab(t.batch * t.out_h, t.channels));
    } else {
      const at::Tensor weight_taps = tap_major(weight);
      CONV_EXT_SIMD_KERNEL(nhwc_depthwise_grad_input)(grad_output.const_data_ptr<float>(),
                                                      weight_taps.const_data_ptr<float>(),
                                                      grad_input.mutable_data_ptr<float>(), g);
    }
  }
  if (need_weight) {
    // Tasks: (range of output rows, slab of channels). Each range sums into its own (kh, kw, C) partial, added in
    // range order (deterministic for a thread count); where the slabs alone give every thread work, one range.
    const int64_t rows = g.batch * g.out_h, slab = channel_slab(rows, g.channels);
    const int64_t slabs = (g.channels + slab - 1) / slab, threads = at::get_num_threads();
    const int64_t ranges = slabs >= threads ? 1 : std::min(rows, threads);
    const at::Tensor sums = row_range_sums(
        rows, ranges, slabs, {g.kernel_h, g.kernel_w, g.channels}, input.options(),
        [&](float* partial, int64_t row_begin, int64_t row_end, int64_t s) {
          CONV_EXT_SIMD_KERNEL(nhwc_depthwise_grad_weight)(grad_output.const_data_ptr<float>(),
                                                           input.const_data_ptr<float>(), partial, g, row_begin,
                                                           row_end, s * slab, std::min(g.channels, (s + 1) * slab));
        });
    // (kh, kw, C) -> (C, 1, kh, kw), contiguous: for that shape the same memory as channels_last.
    grad_weight = sums.permute({2, 0, 1}).contiguous().unsqueeze(1);
  }
  return {grad_input, grad_weight};
}

}  // namespace conv_ext::cpu
