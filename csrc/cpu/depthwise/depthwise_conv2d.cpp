// Depthwise convolution on the CPU (groups == in_channels): each group's GEMM is (O/g x kh*kw) @ (kh*kw x L),
// a handful of taps per output, so writing the columns out costs more than the product. Here the product is
// fused into the row walk of im2col: every tap adds its weight times a row of the input straight onto the
// output row (and, in backward, the transposed walks of col2im and of the weight gradient). Same bounds
// arithmetic as the tiled path's column rows (valid_range.h); every output element has one writer and sums its
// taps in a fixed order, so the results are deterministic, and independent of the thread count.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <numeric>
#include <vector>

#include "cpu/depthwise/depthwise_conv2d.h"
#include "cpu/valid_range.h"

namespace conv_ext::cpu {

namespace {

// Calls row(oh, h, cols, w_offset) for every output row oh of tap (i, j) whose input row h is inside the image;
// cols is the range of output columns whose input column lies inside it.
template <typename RowFn>
void for_each_tap_row(int64_t i, int64_t j, const ConvGeometry& g, const RowFn& row) {
  const int64_t w_offset = j * g.dilation_w - g.pad_w;
  const ValidRange cols = valid_outputs(g.out_w, g.width, g.stride_w, w_offset);
  for (int64_t oh = 0; oh < g.out_h; ++oh) {
    const int64_t h = oh * g.stride_h - g.pad_h + i * g.dilation_h;
    if (in_range(h, g.height)) row(oh, h, cols, w_offset);
  }
}

template <typename scalar_t>
void depthwise_forward(const scalar_t* input, const scalar_t* weight, const scalar_t* bias, scalar_t* output,
                       const ConvGeometry& g, int64_t out_channels) {
  const int64_t multiplier = out_channels / g.channels, taps = g.kernel_h * g.kernel_w;
  at::parallel_for(0, g.batch * out_channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {  // plane = n * O + o
      const int64_t o = plane % out_channels, n = plane / out_channels;
      const scalar_t* x = input + (n * g.channels + o / multiplier) * g.height * g.width;
      scalar_t* y = output + plane * g.out_plane();
      std::fill(y, y + g.out_plane(), bias ? bias[o] : scalar_t(0));
      for (int64_t i = 0; i < g.kernel_h; ++i) {
        for (int64_t j = 0; j < g.kernel_w; ++j) {
          const scalar_t w = weight[o * taps + i * g.kernel_w + j];
          for_each_tap_row(i, j, g, [&](int64_t oh, int64_t h, ValidRange cols, int64_t w_offset) {
            scalar_t* y_row = y + oh * g.out_w;
            const scalar_t* x_row = x + h * g.width;
            for (int64_t ow = cols.begin; ow < cols.end; ++ow) y_row[ow] += w * x_row[ow * g.stride_w + w_offset];
          });
        }
      }
    }
  });
}

template <typename scalar_t>
void depthwise_grad_input(const scalar_t* grad_output, const scalar_t* weight, scalar_t* grad_input,
                          const ConvGeometry& g, int64_t out_channels) {
  const int64_t multiplier = out_channels / g.channels, taps = g.kernel_h * g.kernel_w;
  at::parallel_for(0, g.batch * g.channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {  // plane = n * C + c
      const int64_t c = plane % g.channels, n = plane / g.channels;
      scalar_t* dx = grad_input + plane * g.height * g.width;
      std::fill(dx, dx + g.height * g.width, scalar_t(0));
      for (int64_t o = c * multiplier; o < (c + 1) * multiplier; ++o) {
        const scalar_t* dy = grad_output + (n * out_channels + o) * g.out_plane();
        for (int64_t i = 0; i < g.kernel_h; ++i) {
          for (int64_t j = 0; j < g.kernel_w; ++j) {
            const scalar_t w = weight[o * taps + i * g.kernel_w + j];
            for_each_tap_row(i, j, g, [&](int64_t oh, int64_t h, ValidRange cols, int64_t w_offset) {
              const scalar_t* dy_row = dy + oh * g.out_w;
              scalar_t* dx_row = dx + h * g.width;
              for (int64_t ow = cols.begin; ow < cols.end; ++ow) dx_row[ow * g.stride_w + w_offset] += w * dy_row[ow];
            });
          }
        }
      }
    }
  });
}

template <typename scalar_t>
void depthwise_grad_weight(const scalar_t* grad_output, const scalar_t* input, scalar_t* grad_weight,
                           const ConvGeometry& g, int64_t out_channels) {
  const int64_t multiplier = out_channels / g.channels, taps = g.kernel_h * g.kernel_w;
  // One task per output channel: its taps' sums over the batch, sample by sample (the planes stay in cache
  // across the taps). Each tap sums into a row of partial sums, one per output column (an elementwise update
  // the compiler vectorises, where a single running sum would be a serial chain), reduced in order at the end.
  at::parallel_for(0, out_channels, 1, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> partial(taps * g.out_w);
    for (int64_t o = begin; o < end; ++o) {
      std::fill(partial.begin(), partial.end(), scalar_t(0));
      for (int64_t n = 0; n < g.batch; ++n) {
        const scalar_t* x = input + (n * g.channels + o / multiplier) * g.height * g.width;
        const scalar_t* dy = grad_output + (n * out_channels + o) * g.out_plane();
        for (int64_t i = 0; i < g.kernel_h; ++i) {
          for (int64_t j = 0; j < g.kernel_w; ++j) {
            scalar_t* acc = partial.data() + (i * g.kernel_w + j) * g.out_w;
            for_each_tap_row(i, j, g, [&](int64_t oh, int64_t h, ValidRange cols, int64_t w_offset) {
              const scalar_t* dy_row = dy + oh * g.out_w;
              const scalar_t* x_row = x + h * g.width;
              for (int64_t ow = cols.begin; ow < cols.end; ++ow) {
                acc[ow] += dy_row[ow] * x_row[ow * g.stride_w + w_offset];
              }
            });
          }
        }
      }
      for (int64_t tap = 0; tap < taps; ++tap) {
        const scalar_t* acc = partial.data() + tap * g.out_w;
        grad_weight[o * taps + tap] = std::accumulate(acc, acc + g.out_w, scalar_t(0));
      }
    }
  });
}

}  // namespace

at::Tensor depthwise_conv2d(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                            const ConvGeometry& g) {
  at::Tensor output = at::empty({g.batch, weight.size(0), g.out_h, g.out_w}, input.options());
  const std::optional<at::Tensor> bias_contiguous = bias ? std::optional<at::Tensor>(bias->contiguous()) : bias;
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "depthwise_conv2d", [&] {
    depthwise_forward(input.const_data_ptr<scalar_t>(), weight.const_data_ptr<scalar_t>(),
                      bias_contiguous ? bias_contiguous->const_data_ptr<scalar_t>() : nullptr,
                      output.mutable_data_ptr<scalar_t>(), g, weight.size(0));
  });
  return output;
}

void depthwise_conv2d_backward(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                               const ConvGeometry& g, const at::Tensor& grad_input, const at::Tensor& grad_weight) {
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "depthwise_conv2d_backward", [&] {
    if (grad_input.defined()) {
      depthwise_grad_input(grad_output.const_data_ptr<scalar_t>(), weight.const_data_ptr<scalar_t>(),
                           grad_input.mutable_data_ptr<scalar_t>(), g, weight.size(0));
    }
    if (grad_weight.defined()) {
      depthwise_grad_weight(grad_output.const_data_ptr<scalar_t>(), input.const_data_ptr<scalar_t>(),
                            grad_weight.mutable_data_ptr<scalar_t>(), g, weight.size(0));
    }
  });
}

}  // namespace conv_ext::cpu
