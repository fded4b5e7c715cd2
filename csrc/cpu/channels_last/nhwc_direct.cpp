// The direct NHWC forward (nhwc_direct.h): its input in NHWC memory, the kernel of
// nhwc_direct_simd.inc once per instruction set, and dx at stride 1 as that forward on dy.
#include "cpu/channels_last/nhwc_direct.h"
#include "cpu/channels_last/nhwc_tensors.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "cpu/grad_input/grad_input_as_conv2d.h"
#include "ops/settings.h"

#define CONV_EXT_SIMD_BODY "cpu/channels_last/nhwc_direct_simd.inc"
#include "cpu/simd/simd_for_each_isa.h"

namespace conv_ext::cpu {

namespace {

// The input in NHWC memory, (N, H, W, C): its own where it is channels_last, else a copy.
at::Tensor nhwc(const at::Tensor& input) {
  const at::Tensor nhwc = input.permute({0, 2, 3, 1});
  if (nhwc.is_contiguous()) return nhwc;
  record_workspace_bytes(nhwc.numel() * nhwc.element_size());
  return nhwc.contiguous();
}

// The weight of the convolution that the kernel runs, packed for it: packed[((b * taps + tap) * C' + c) * lanes + l]
// = W[b * lanes + l][c][tap], zeros past its O' output channels. W is the op's weight (O, C, kh, kw), or for dx, the
// weight of the convolution of dy: W[c][o][tap] = weight[o][c][taps - 1 - tap] (transposed, flipped in both taps).
at::Tensor packed_weight(const at::Tensor& weight_arg, int64_t lanes, bool for_grad_input) {
  const at::Tensor weight = weight_arg.contiguous();
  const int64_t O = weight.size(0), C = weight.size(1), taps = weight.size(2) * weight.size(3);
  const int64_t outs = for_grad_input ? C : O, ins = for_grad_input ? O : C;
  const int64_t blocks = (outs + lanes - 1) / lanes;
  at::Tensor packed = at::empty({blocks, taps, ins, lanes}, weight.options());
  const float* w = weight.const_data_ptr<float>();
  float* to = packed.mutable_data_ptr<float>();
  // In parallel over (block, c), each writing its taps x lanes; the lanes innermost: the writes run along memory.
  at::parallel_for(0, blocks * ins, 16, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t block = item / ins, c = item % ins;
      for (int64_t tap = 0; tap < taps; ++tap) {
        float* row = to + ((block * taps + tap) * ins + c) * lanes;
        for (int64_t l = 0; l < lanes; ++l) {
          const int64_t o = block * lanes + l;
          row[l] = o >= outs        ? 0.0f
                   : for_grad_input ? w[(c * C + o) * taps + taps - 1 - tap]
                                    : w[(o * C + c) * taps + tap];
        }
      }
    }
  });
  return packed;
}

// The kernel on `input` with the op's weight (or, for_grad_input, on dy with dx's weight), geometry g.
at::Tensor run(const at::Tensor& input, const at::Tensor& weight, bool for_grad_input, const float* bias,
               const ConvGeometry& g, at::MemoryFormat output_format) {
  const int64_t out_channels = weight.size(for_grad_input ? 1 : 0);
  const at::Tensor nhwc_input = nhwc(input);
  const at::Tensor packed =
      packed_weight(weight, CONV_EXT_SIMD_KERNEL(nhwc_direct_lanes)(out_channels), for_grad_input);
  const bool nchw_output = output_format != at::MemoryFormat::ChannelsLast;
  at::Tensor output = at::empty({g.batch, out_channels, g.out_h, g.out_w},
                                input.options().memory_format(nchw_output ? at::MemoryFormat::Contiguous
                                                                          : at::MemoryFormat::ChannelsLast));
  CONV_EXT_SIMD_KERNEL(nhwc_direct_conv2d)(nhwc_input.const_data_ptr<float>(), packed.const_data_ptr<float>(), bias,
                                           output.mutable_data_ptr<float>(), nchw_output, g, out_channels);
  return output;
}

}  // namespace

at::Tensor nhwc_direct_conv2d(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                              const ConvGeometry& g, at::MemoryFormat output_format) {
  return run(input, weight, false, bias ? bias->const_data_ptr<float>() : nullptr, g, output_format);
}

at::Tensor nhwc_direct_grad_input(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                                  const ConvGeometry& g, at::MemoryFormat output_format) {
  at::Tensor grad_input =
      run(grad_output, weight, true, nullptr, transposed_geometry(g, weight.size(0)), output_format);
  TORCH_INTERNAL_ASSERT(grad_input.sizes() == input.sizes());
  return grad_input;
}

}  // namespace conv_ext::cpu
