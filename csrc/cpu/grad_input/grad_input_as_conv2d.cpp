// dx as forward convolutions of dy on a column-free forward kernel (the kernel table picks it): no column
// gradient, no col2im.
//
// Stride 1: dx is the convolution of dy with the weight flipped in both taps and transposed within each group
// (O/g <-> C/g), padded by d*(k-1) - p (transposed_geometry).
//
// Stride s > 1 (dilation 1), by phases: along one dimension, dx[h] = sum over (oh, i) with oh*s - p + i = h of
// dy[oh] * w[i]. For the rows h = s*u + a of phase a, only the taps i = i0 + s*m with i0 = (a + p) mod s reach
// them, from oh = u + e - m, e = (a + p - i0) / s. With the taps flipped (m' = M - 1 - m, M taps in the phase),
// that is a stride-1 convolution of dy: dx_a[u] = sum over m' of dy[u - (M - 1 - e) + m'] * w[i0 + s*(M-1-m')],
// padding M - 1 - e (negative where it crops), as many outputs u as rows of phase a. Every product of the strided
// dx is in exactly one phase: the s*s phases (a, b) do the work of one dense dx, not s*s times it; each is
// written into its own rows and columns of dx.
#include <ATen/ATen.h>

#include "cpu/grad_input/grad_input_as_conv2d.h"

namespace conv_ext::cpu {

namespace {

// The weight flipped in both taps and transposed within each group: (C, O/g, kh, kw), the weight of dx as a
// convolution of dy.
at::Tensor flipped_transposed_weight(const at::Tensor& weight, int64_t groups) {
  const int64_t out_channels = weight.size(0), group_channels = weight.size(1);
  return weight.view({groups, out_channels / groups, group_channels, weight.size(2), weight.size(3)})
      .transpose(1, 2)
      .flip({3, 4})
      .reshape({groups * group_channels, out_channels / groups, weight.size(2), weight.size(3)});
}

// One dimension of one phase: the phase's first row (a), its taps (count and the first one in the flipped
// kernel, s apart), the padding of its convolution of dy, and its output length.
struct PhaseAxis {
  int64_t taps, first_flipped_tap, pad, length;
};

PhaseAxis phase_axis(int64_t a, int64_t stride, int64_t pad, int64_t kernel, int64_t length) {
  const int64_t first_tap = (a + pad) % stride;  // i0
  const int64_t taps = first_tap < kernel ? (kernel - first_tap + stride - 1) / stride : 0;
  const int64_t e = (a + pad - first_tap) / stride;
  // Flipped, tap i0 + s*(M-1-m') is tap k-1-i0-s*(M-1) + s*m'.
  return {taps, kernel - 1 - first_tap - stride * (taps - 1), taps - 1 - e,
          length > a ? (length - a + stride - 1) / stride : 0};
}

ConvGeometry phase_geometry(const ConvGeometry& g, int64_t out_channels, const PhaseAxis& rows,
                            const PhaseAxis& cols) {
  ConvGeometry p = g;
  p.channels = out_channels;
  p.height = g.out_h;
  p.width = g.out_w;
  p.kernel_h = rows.taps;
  p.kernel_w = cols.taps;
  p.stride_h = p.stride_w = 1;
  p.pad_h = rows.pad;
  p.pad_w = cols.pad;
  p.out_h = rows.length;
  p.out_w = cols.length;
  return p;
}

// Calls phase(a, b, row axis, column axis) for each phase of dx.
template <typename Phase>
void for_each_phase(const ConvGeometry& g, Phase phase) {
  for (int64_t a = 0; a < g.stride_h; ++a) {
    for (int64_t b = 0; b < g.stride_w; ++b) {
      phase(a, b, phase_axis(a, g.stride_h, g.pad_h, g.kernel_h, g.height),
            phase_axis(b, g.stride_w, g.pad_w, g.kernel_w, g.width));
    }
  }
}

}  // namespace

ConvGeometry transposed_geometry(const ConvGeometry& g, int64_t out_channels) {
  ConvGeometry t = g;
  t.channels = out_channels;
  t.height = g.out_h;
  t.width = g.out_w;
  t.pad_h = g.dilation_h * (g.kernel_h - 1) - g.pad_h;
  t.pad_w = g.dilation_w * (g.kernel_w - 1) - g.pad_w;
  t.out_h = g.height;
  t.out_w = g.width;
  return t;
}

at::Tensor grad_input_as_conv2d(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                                const ConvGeometry& g, int64_t groups, Conv2dKernel conv2d) {
  const int64_t out_channels = weight.size(0);
  const at::Tensor flipped = flipped_transposed_weight(weight, groups).contiguous();
  at::Tensor grad_input = at::empty_like(input);
  const ConvGeometry dx_as_conv2d = transposed_geometry(g, out_channels);
  conv2d(grad_output.const_data_ptr<float>(), flipped.const_data_ptr<float>(), nullptr,
         grad_input.mutable_data_ptr<float>(), dx_as_conv2d, groups, g.channels);
  return grad_input;
}

std::vector<ConvGeometry> grad_input_phase_geometries(const ConvGeometry& g, int64_t out_channels) {
  std::vector<ConvGeometry> phases;
  for_each_phase(g, [&](int64_t, int64_t, const PhaseAxis& rows, const PhaseAxis& cols) {
    if (rows.taps > 0 && cols.taps > 0 && rows.length > 0 && cols.length > 0) {
      phases.push_back(phase_geometry(g, out_channels, rows, cols));
    }
  });
  return phases;
}

at::Tensor phased_grad_input(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                             const ConvGeometry& g, int64_t groups, Conv2dKernel conv2d) {
  const int64_t out_channels = weight.size(0);
  const at::Tensor flipped = flipped_transposed_weight(weight, groups);
  at::Tensor grad_input = at::empty_like(input);
  // One buffer for every phase's output, in turn: phase (0, 0) has the most rows and columns.
  const int64_t most_rows = phase_axis(0, g.stride_h, g.pad_h, g.kernel_h, g.height).length;
  const int64_t most_cols = phase_axis(0, g.stride_w, g.pad_w, g.kernel_w, g.width).length;
  const at::Tensor buffer = at::empty({g.batch * g.channels * most_rows * most_cols}, input.options());
  for_each_phase(g, [&](int64_t a, int64_t b, const PhaseAxis& rows, const PhaseAxis& cols) {
    at::Tensor rows_of_phase = grad_input.slice(2, a, g.height, g.stride_h).slice(3, b, g.width, g.stride_w);
    if (rows_of_phase.numel() == 0) return;
    if (rows.taps == 0 || cols.taps == 0) {  // no tap reaches these rows and columns of dx
      rows_of_phase.zero_();
      return;
    }
    const at::Tensor phase_weight = flipped.slice(2, rows.first_flipped_tap, g.kernel_h, g.stride_h)
                                        .slice(3, cols.first_flipped_tap, g.kernel_w, g.stride_w)
                                        .contiguous();
    at::Tensor phase =
        buffer.narrow(0, 0, g.batch * g.channels * rows.length * cols.length).view(rows_of_phase.sizes());
    conv2d(grad_output.const_data_ptr<float>(), phase_weight.const_data_ptr<float>(), nullptr,
           phase.mutable_data_ptr<float>(), phase_geometry(g, out_channels, rows, cols), groups, g.channels);
    rows_of_phase.copy_(phase);
  });
  return grad_input;
}

}  // namespace conv_ext::cpu
