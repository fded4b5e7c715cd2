// Depthwise convolutions on channels_last memory (nhwc_depthwise.h): the tensors laid out for the kernels (the
// weight tap-major), the kernels of nhwc_depthwise_simd.inc once per instruction set, and dw's per-thread partial
// sums added in thread order (deterministic for a thread count).
#include "cpu/channels_last/nhwc_depthwise.h"
#include "cpu/channels_last/nhwc_tensors.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "cpu/grad_input/grad_input_as_conv2d.h"
#include "cpu/valid_range.h"
#include "ops/conv2d_args.h"

#define CONV_EXT_SIMD_BODY "cpu/channels_last/nhwc_depthwise_simd.inc"
#include "cpu/simd/simd_for_each_isa.h"

namespace conv_ext::cpu {

namespace {

// The weight (C, 1, kh, kw) as (kh, kw, C): a tap's channels contiguous.
at::Tensor tap_major(const at::Tensor& weight) { return weight.permute({2, 3, 0, 1}).contiguous(); }

}  // namespace

at::Tensor nhwc_depthwise_conv2d(const at::Tensor& input_arg, const at::Tensor& weight,
                                 const std::optional<at::Tensor>& bias, const ConvGeometry& g) {
  const at::Tensor input = channels_last(input_arg), weight_taps = tap_major(weight);
  at::Tensor output = new_channels_last({g.batch, g.channels, g.out_h, g.out_w}, input);
  if (output.numel() == 0) return output;
  CONV_EXT_SIMD_KERNEL(nhwc_depthwise_conv2d)(input.const_data_ptr<float>(), weight_taps.const_data_ptr<float>(),
                                              bias ? bias->const_data_ptr<float>() : nullptr,
                                              output.mutable_data_ptr<float>(), g);
  return output;
}

std::pair<at::Tensor, at::Tensor> nhwc_depthwise_conv2d_backward(const at::Tensor& grad_output_arg,
                                                                 const at::Tensor& input_arg, const at::Tensor& weight,
                                                                 const ConvGeometry& g, bool need_input,
                                                                 bool need_weight) {
  const at::Tensor input = channels_last(input_arg), grad_output = channels_last(grad_output_arg);
  at::Tensor grad_input = unrequested_output(input), grad_weight = unrequested_output(input);
  if (need_input) {
    grad_input = new_channels_last(input.sizes(), input);
    if (grad_output.numel() == 0) {
      grad_input.zero_();
    } else if (g.stride_h == 1 && g.stride_w == 1) {
      // The convolution of dy with the weight flipped in (i, j) (transposed_geometry; depthwise: no transpose of
      // channels).
      const at::Tensor flipped_taps = tap_major(weight.flip({2, 3}));
      CONV_EXT_SIMD_KERNEL(nhwc_depthwise_conv2d)(grad_output.const_data_ptr<float>(),
                                                  flipped_taps.const_data_ptr<float>(), nullptr,
                                                  grad_input.mutable_data_ptr<float>(),
                                                  transposed_geometry(g, g.channels));
    } else {
      const at::Tensor weight_taps = tap_major(weight);
      CONV_EXT_SIMD_KERNEL(nhwc_depthwise_grad_input)(grad_output.const_data_ptr<float>(),
                                                      weight_taps.const_data_ptr<float>(),
                                                      grad_input.mutable_data_ptr<float>(), g);
    }
  }
  if (need_weight) {
    // One partial (kh, kw, C) per thread over a contiguous range of output rows, added in thread order.
    const int64_t threads = at::get_num_threads(), rows = g.batch * g.out_h;
    at::Tensor partials = at::zeros({threads, g.kernel_h, g.kernel_w, g.channels}, input.options());
    if (rows > 0) {
      at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
        float* partial = partials.mutable_data_ptr<float>() + at::get_thread_num() * partials.stride(0);
        CONV_EXT_SIMD_KERNEL(nhwc_depthwise_grad_weight)(grad_output.const_data_ptr<float>(),
                                                         input.const_data_ptr<float>(), partial, g, begin, end);
      });
    }
    // (kh, kw, C) -> (C, 1, kh, kw), contiguous: for that shape the same memory as channels_last.
    grad_weight = partials.sum(0).permute({2, 0, 1}).contiguous().unsqueeze(1);
  }
  return {grad_input, grad_weight};
}

}  // namespace conv_ext::cpu
