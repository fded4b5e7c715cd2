// The direct NHWC forward (nhwc_direct.h): its input in NHWC memory, the kernel of
// nhwc_direct_simd.inc once per instruction set, and dx as that forward on dy (by phases at strides > 1).
#include "cpu/channels_last/nhwc_direct.h"
#include "cpu/channels_last/nhwc_tensors.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "cpu/grad_input/grad_input_as_conv2d.h"
#include "cpu/simd/streamed_output.h"
#include "ops/settings.h"

namespace conv_ext::cpu {

// Where the kernel writes output position (n, oh, ow) of its convolution: the planes of an NCHW output (each chunk
// transposed into them), or an NHWC pixel, ((n * height + row0 + oh * row_step) * width + col0 + ow * col_step),
// of `out_channels` floats: (n, oh, ow) itself for the whole output, every s-th pixel for a phase of a strided dx.
struct DirectOutput {
  float* data;
  bool nchw;
  int64_t height, width, row0 = 0, col0 = 0, row_step = 1, col_step = 1;

  bool phase_of_grad_input() const { return row_step != 1 || col_step != 1; }
  int64_t pixel(int64_t n, int64_t oh, int64_t ow) const {
    return (n * height + row0 + oh * row_step) * width + col0 + ow * col_step;
  }
};

}  // namespace conv_ext::cpu

#define CONV_EXT_SIMD_BODY "cpu/channels_last/nhwc_direct_simd.inc"
#include "cpu/simd/simd_for_each_isa.h"

namespace conv_ext::cpu {

namespace {

// The input in NHWC memory, (N, H, W, C): its own where it is channels_last, else a copy.
at::Tensor nhwc(const at::Tensor& input) {
  if (!input.is_contiguous(at::MemoryFormat::ChannelsLast)) {
    record_workspace_bytes(input.numel() * input.element_size());
  }
  return channels_last(input).permute({0, 2, 3, 1});
}

// The weight of the convolution that the kernel runs, packed for it: packed[((b * taps + tap) * C' + c) * lanes + l]
// = W[b * lanes + l][c][tap], zeros past its O' output channels; the last block's rows are last_lanes long (its
// panel starts where a full block's would, its rows packed closer). W is the op's weight (O, C, kh, kw), or for dx,
// the weight of the convolution of dy: W[c][o][tap] = weight[o][c][taps - 1 - tap] (transposed, flipped in both
// taps).
// Read in the weight's own memory format (a channels_last model's weights are channels_last: a contiguous copy
// first cost as much as the packing, 0.75 ms for 512->512 3x3 on 2 threads).
at::Tensor packed_weight(const at::Tensor& weight, int64_t lanes, int64_t last_lanes, bool for_grad_input) {
  const int64_t O = weight.size(0), C = weight.size(1), kw = weight.size(3), taps = weight.size(2) * kw;
  const int64_t outs = for_grad_input ? C : O, ins = for_grad_input ? O : C;
  // Strides of W's output channel (the lanes) and input channel, and the offset of each of its taps.
  const int64_t out_stride = weight.stride(for_grad_input ? 1 : 0), in_stride = weight.stride(for_grad_input ? 0 : 1);
  std::vector<int64_t> tap_offsets(static_cast<size_t>(taps));
  for (int64_t tap = 0; tap < taps; ++tap) {
    const int64_t t = for_grad_input ? taps - 1 - tap : tap;
    tap_offsets[tap] = t / kw * weight.stride(2) + t % kw * weight.stride(3);
  }
  const int64_t blocks = (outs + lanes - 1) / lanes;
  at::Tensor packed = at::empty({blocks, taps, ins, lanes}, weight.options());
  const float* w = weight.const_data_ptr<float>();
  float* to = packed.mutable_data_ptr<float>();
  // A transpose (lanes from W's output channels) in tiles of 16 lanes x 16 elements along the weight's memory: the
  // channels of one tap where they are consecutive (a channels_last weight), else the taps of one channel (a
  // contiguous one; `tap_at[j]`: the tap at offset j), else element by element (row copies where the lanes are
  // consecutive: dx of a channels_last weight).
  const bool lanes_consecutive = out_stride == 1, channels_consecutive = !lanes_consecutive && in_stride == 1;
  const bool taps_consecutive = !lanes_consecutive && weight.stride(3) == 1 && weight.stride(2) == kw;
  std::vector<int64_t> tap_at(static_cast<size_t>(taps));
  for (int64_t tap = 0; taps_consecutive && tap < taps; ++tap) tap_at[tap_offsets[tap]] = tap;
  const auto pack_tile = CONV_EXT_SIMD_KERNEL(nhwc_direct_pack_tile);
  constexpr int64_t kTile = 16;
  const int64_t in_tiles = (ins + kTile - 1) / kTile;
  at::parallel_for(0, blocks * in_tiles, 1, [&](int64_t begin, int64_t end) {
    float* to_rows[kTile];
    for (int64_t item = begin; item < end; ++item) {
      const int64_t block = item / in_tiles, c0 = item % in_tiles * kTile, c1 = std::min(ins, c0 + kTile);
      const int64_t filled = outs - block * lanes;  // lanes past it are zeros
      const int64_t block_lanes = block == blocks - 1 ? last_lanes : lanes;
      float* panel = to + block * taps * ins * lanes;
      for (int64_t l0 = 0; l0 < block_lanes; l0 += kTile) {
        const int64_t tile_lanes = std::min(filled, l0 + kTile) - l0;
        const float* lane0 = w + (block * lanes + l0) * out_stride;
        const auto row = [&](int64_t tap, int64_t c) { return panel + (tap * ins + c) * block_lanes + l0; };
        if (channels_consecutive) {
          for (int64_t tap = 0; tap < taps; ++tap) {
            for (int64_t c = c0; c < c1; ++c) to_rows[c - c0] = row(tap, c);
            pack_tile(lane0 + c0 + tap_offsets[tap], out_stride, tile_lanes, c1 - c0, to_rows);
          }
        } else if (taps_consecutive) {
          for (int64_t c = c0; c < c1; ++c) {
            for (int64_t j0 = 0; j0 < taps; j0 += kTile) {
              const int64_t j1 = std::min(taps, j0 + kTile);
              for (int64_t j = j0; j < j1; ++j) to_rows[j - j0] = row(tap_at[j], c);
              pack_tile(lane0 + c * in_stride + j0, out_stride, tile_lanes, j1 - j0, to_rows);
            }
          }
        } else {
          for (int64_t tap = 0; tap < taps; ++tap) {
            for (int64_t c = c0; c < c1; ++c) {
              float* packed_row = row(tap, c);
              const float* from = lane0 + c * in_stride + tap_offsets[tap];
              if (lanes_consecutive) {
                std::copy_n(from, tile_lanes, packed_row);
              } else {
                for (int64_t l = 0; l < tile_lanes; ++l) packed_row[l] = from[l * out_stride];
              }
              std::fill(packed_row + tile_lanes, packed_row + kTile, 0.0f);
            }
          }
        }
      }
    }
  });
  return packed;
}

// The packed weight of the kernel on `input` with the op's weight (or, for_grad_input, on dy with dx's weight).
at::Tensor packed_for(const at::Tensor& weight, bool for_grad_input) {
  const int64_t out_channels = weight.size(for_grad_input ? 1 : 0);
  return packed_weight(weight, CONV_EXT_SIMD_KERNEL(nhwc_direct_lanes)(out_channels),
                       CONV_EXT_SIMD_KERNEL(nhwc_direct_last_lanes)(out_channels), for_grad_input);
}

// The kernel on `input` with the op's weight (or, for_grad_input, on dy with dx's weight), geometry g.
at::Tensor run(const at::Tensor& input, const at::Tensor& weight, bool for_grad_input, const float* bias,
               const ConvGeometry& g, at::MemoryFormat output_format) {
  const int64_t out_channels = weight.size(for_grad_input ? 1 : 0);
  const at::Tensor nhwc_input = nhwc(input);
  const at::Tensor packed = packed_for(weight, for_grad_input);
  const bool nchw_output = output_format != at::MemoryFormat::ChannelsLast;
  at::Tensor output = at::empty({g.batch, out_channels, g.out_h, g.out_w},
                                input.options().memory_format(nchw_output ? at::MemoryFormat::Contiguous
                                                                          : at::MemoryFormat::ChannelsLast));
  CONV_EXT_SIMD_KERNEL(nhwc_direct_conv2d)(nhwc_input.const_data_ptr<float>(), packed.const_data_ptr<float>(), bias,
                                           {output.mutable_data_ptr<float>(), nchw_output, g.out_h, g.out_w}, g,
                                           out_channels);
  return output;
}

// dx of a strided convolution by phases (grad_input_as_conv2d.cpp): each phase the kernel on dy with the taps of
// the weight that reach its pixels, writing every s-th pixel of the NHWC dx; zeros where no tap reaches.
at::Tensor phased_grad_input(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                             const ConvGeometry& g) {
  const at::Tensor nhwc_grad_output = nhwc(grad_output);
  const std::vector<GradInputPhase> phases = grad_input_phases(g, weight.size(0));
  const bool all_reached = std::all_of(phases.begin(), phases.end(), [](const GradInputPhase& p) { return p.reached; });
  const at::TensorOptions options = input.options().memory_format(at::MemoryFormat::ChannelsLast);
  at::Tensor grad_input = at::empty(input.sizes(), options);
  if (!all_reached) grad_input.zero_();
  for (const GradInputPhase& phase : phases) {
    if (!phase.reached) continue;
    const at::Tensor taps = weight.slice(2, phase.first_tap_h, g.kernel_h, g.stride_h)
                                .slice(3, phase.first_tap_w, g.kernel_w, g.stride_w);
    const at::Tensor packed = packed_for(taps, true);
    const DirectOutput pixels{grad_input.mutable_data_ptr<float>(), false, g.height, g.width, phase.row,
                              phase.col, g.stride_h, g.stride_w};
    CONV_EXT_SIMD_KERNEL(nhwc_direct_conv2d)(nhwc_grad_output.const_data_ptr<float>(),
                                             packed.const_data_ptr<float>(), nullptr, pixels, phase.geometry,
                                             g.channels);
  }
  return grad_input;
}

}  // namespace

at::Tensor nhwc_direct_conv2d(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                              const ConvGeometry& g, at::MemoryFormat output_format) {
  return run(input, weight, false, bias ? bias->const_data_ptr<float>() : nullptr, g, output_format);
}

at::Tensor nhwc_direct_grad_input(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                                  const ConvGeometry& g, at::MemoryFormat output_format) {
  at::Tensor grad_input = g.stride_h == 1 && g.stride_w == 1
                              ? run(grad_output, weight, true, nullptr, transposed_geometry(g, weight.size(0)),
                                    output_format)
                              : phased_grad_input(grad_output, input, weight, g);
  TORCH_INTERNAL_ASSERT(grad_input.sizes() == input.sizes());
  return grad_input;
}

}  // namespace conv_ext::cpu
