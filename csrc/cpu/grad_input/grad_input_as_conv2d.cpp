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
// padding M - 1 - e (negative where it crops), as many outputs u as rows of phase a: the convolution of dy with
// the taps i0, i0 + s, ... of the weight, flipped and transposed as for stride 1. Every product of the strided
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

// One dimension of one phase: its taps (count and the first one, s apart, in the unflipped kernel), the padding
// of its convolution of dy, and its output length.
struct PhaseAxis {
  int64_t taps, first_tap, pad, length;
};

PhaseAxis phase_axis(int64_t a, int64_t stride, int64_t pad, int64_t kernel, int64_t length) {
  const int64_t first_tap = (a + pad) % stride;  // i0
  const int64_t taps = first_tap < kernel ? (kernel - first_tap + stride - 1) / stride : 0;
  const int64_t e = (a + pad - first_tap) / stride;
  return {taps, first_tap, taps - 1 - e, length > a ? (length - a + stride - 1) / stride : 0};
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

std::vector<GradInputPhase> grad_input_phases(const ConvGeometry& g, int64_t out_channels) {
  std::vector<GradInputPhase> phases;
  for (int64_t a = 0; a < g.stride_h; ++a) {
    for (int64_t b = 0; b < g.stride_w; ++b) {
      const PhaseAxis rows = phase_axis(a, g.stride_h, g.pad_h, g.kernel_h, g.height);
      const PhaseAxis cols = phase_axis(b, g.stride_w, g.pad_w, g.kernel_w, g.width);
      phases.push_back({a, b, rows.taps > 0 && cols.taps > 0, rows.first_tap, cols.first_tap,
                        phase_geometry(g, out_channels, rows, cols)});
    }
  }
  return phases;
}

std::vector<ConvGeometry> grad_input_phase_geometries(const ConvGeometry& g, int64_t out_channels) {
  std::vector<ConvGeometry> geometries;
  for (const GradInputPhase& phase : grad_input_phases(g, out_channels)) {
    if (phase.reached && phase.geometry.out_h > 0 && phase.geometry.out_w > 0) geometries.push_back(phase.geometry);
  }
  return geometries;
}

at::Tensor phased_grad_input(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                             const ConvGeometry& g, int64_t groups, Conv2dKernel conv2d) {
  at::Tensor grad_input = at::empty_like(input);
  const std::vector<GradInputPhase> phases = grad_input_phases(g, weight.size(0));
  // One buffer for every phase's output, in turn: phase (0, 0) has the most rows and columns.
  const at::Tensor buffer =
      at::empty({g.batch * g.channels * phases[0].geometry.out_h * phases[0].geometry.out_w}, input.options());
  for (const GradInputPhase& phase : phases) {
    at::Tensor pixels = grad_input.slice(2, phase.row, g.height, g.stride_h).slice(3, phase.col, g.width, g.stride_w);
    if (pixels.numel() == 0) continue;
    if (!phase.reached) {  // no tap reaches these rows and columns of dx
      pixels.zero_();
      continue;
    }
    const at::Tensor taps = weight.slice(2, phase.first_tap_h, g.kernel_h, g.stride_h)
                                .slice(3, phase.first_tap_w, g.kernel_w, g.stride_w);
    const at::Tensor phase_weight = flipped_transposed_weight(taps, groups).contiguous();
    at::Tensor result = buffer.narrow(0, 0, pixels.numel()).view(pixels.sizes());
    conv2d(grad_output.const_data_ptr<float>(), phase_weight.const_data_ptr<float>(), nullptr,
           result.mutable_data_ptr<float>(), phase.geometry, groups, g.channels);
    pixels.copy_(result);
  }
  return grad_input;
}

}  // namespace conv_ext::cpu
