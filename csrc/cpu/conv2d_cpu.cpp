// The CPU implementations of the two ops: the arguments checked once, then each pass run by the kernel that the
// kernel table (kernel_table.h) picks, in its family's folder; or (test switch) the textbook path with the
// reference host kernels, the code the GPU runs.
#include <torch/library.h>

#include "cpu/channel_lanes/channel_lanes.h"
#include "cpu/channels_last/nhwc_conv2d.h"
#include "cpu/channels_last/nhwc_depthwise.h"
#include "cpu/channels_last/nhwc_direct.h"
#include "cpu/depthwise/depthwise_conv2d.h"
#include "cpu/grad_input/grad_input_as_conv2d.h"
#include "cpu/implicit/implicit_conv2d.h"
#include "cpu/kernel_table.h"
#include "cpu/layout/layout_change.h"
#include "cpu/tiled/tiled_conv2d.h"
#include "ops/conv2d_args.h"
#include "ops/settings.h"
#include "textbook/textbook_conv2d.h"

namespace conv_ext::cpu {

namespace {

// The kernels that run on NHWC memory (a channels_last op's as it is).
bool on_nhwc(CpuKernel kernel) {
  return kernel == CpuKernel::tiled_nhwc || kernel == CpuKernel::depthwise_nhwc || kernel == CpuKernel::direct_nhwc;
}

// The forward kernels that need no columns (float32, our SIMD layer): also the kernels of dx as a convolution of
// dy. Null for the others.
Conv2dKernel column_free_conv2d(CpuKernel kernel) {
  switch (kernel) {
    case CpuKernel::padded: return padded_conv2d_simd;
    case CpuKernel::exact_taps: return exact_taps_conv2d_simd;
    case CpuKernel::implicit: return implicit_conv2d_simd;
    case CpuKernel::depthwise_simd: return depthwise_conv2d_simd;
    default: return nullptr;
  }
}

// The column-free weight gradients (float32, our SIMD layer). Null for the others.
using GradWeightKernel = void (*)(const float* grad_output, const float* input, float* grad_weight,
                                  const ConvGeometry& geometry, int64_t groups, int64_t out_channels);
GradWeightKernel column_free_grad_weight(CpuKernel kernel) {
  switch (kernel) {
    case CpuKernel::exact_taps: return exact_taps_grad_weight_simd;
    case CpuKernel::implicit: return implicit_conv2d_grad_weight_simd;
    case CpuKernel::depthwise_simd: return depthwise_grad_weight_stride2_simd;  // the table takes it at stride 2
    default: return nullptr;
  }
}

// The forward in the contiguous layout (conv2d_cpu lays it out in the op's memory format).
at::Tensor conv2d_cpu_contiguous(const at::Tensor& input_arg, const at::Tensor& weight_arg,
                                 const std::optional<at::Tensor>& bias_arg, at::IntArrayRef stride,
                                 at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  if (host_reference_kernels_enabled()) {
    return textbook_conv2d(input_arg, weight_arg, bias_arg, stride, padding, dilation, groups,
                           host_reference_kernels());
  }
  const auto output_shape = check_conv2d_args(input_arg, weight_arg, bias_arg, stride, padding, dilation, groups);
  if (lacks_input_channels(input_arg)) return conv2d_without_input_channels(input_arg, output_shape);
  // The ATen calls of the kernels are our implementation, not part of the autograd graph (and out= ops refuse
  // inputs that require grad, as in a double backward).
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const at::Tensor input = in_layout(input_arg, at::MemoryFormat::Contiguous);
  const at::Tensor weight = in_layout(weight_arg, at::MemoryFormat::Contiguous);
  // The kernels index the bias as a plain array.
  const std::optional<at::Tensor> bias = bias_arg ? std::optional(bias_arg->contiguous()) : std::nullopt;
  const ConvGeometry g = make_geometry(input, weight, stride, padding, dilation);
  const int64_t out_channels = weight.size(0);
  const CpuKernel kernel =
      choose_cpu_kernels(input.scalar_type(), g, groups, out_channels, at::MemoryFormat::Contiguous).forward;
  // The NHWC kernels run from the front door (conv2d_cpu), which asks the same table first.
  TORCH_INTERNAL_ASSERT(!on_nhwc(kernel));
  if (const Conv2dKernel conv2d = column_free_conv2d(kernel)) {
    at::Tensor output = at::empty({g.batch, out_channels, g.out_h, g.out_w}, input.options());
    conv2d(input.const_data_ptr<float>(), weight.const_data_ptr<float>(),
           bias ? bias->const_data_ptr<float>() : nullptr,
           output.mutable_data_ptr<float>(), g, groups, out_channels);
    return output;
  }
  if (kernel == CpuKernel::depthwise) return depthwise_conv2d(input, weight, bias, g);
  return tiled_conv2d(input, weight, bias, g, groups);
}

// The backward in the contiguous layout (conv2d_backward_cpu lays it out in the op's memory format).
std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_backward_cpu_contiguous(
    const at::Tensor& grad_output_arg, const at::Tensor& input_arg, const at::Tensor& weight_arg,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
    std::array<bool, 3> output_mask) {
  if (host_reference_kernels_enabled()) {
    return textbook_conv2d_backward(grad_output_arg, input_arg, weight_arg, stride, padding, dilation, groups,
                                    output_mask, host_reference_kernels());
  }
  check_conv2d_backward_args(grad_output_arg, input_arg, weight_arg, stride, padding, dilation, groups);
  if (lacks_input_channels(input_arg)) {
    return conv2d_backward_without_input_channels(input_arg, weight_arg, output_mask);
  }
  const at::AutoDispatchBelowADInplaceOrView below_autograd;  // as in the forward
  const at::Tensor grad_output = in_layout(grad_output_arg, at::MemoryFormat::Contiguous);
  const at::Tensor input = in_layout(input_arg, at::MemoryFormat::Contiguous);
  const at::Tensor weight = in_layout(weight_arg, at::MemoryFormat::Contiguous);
  const bool need_input = output_mask[0], need_weight = output_mask[1], need_bias = output_mask[2];
  auto unused = [&] { return unrequested_output(input); };
  const ConvGeometry g = make_geometry(input, weight, stride, padding, dilation);
  const int64_t out_channels = weight.size(0);
  const CpuKernels kernels =
      choose_cpu_kernels(input.scalar_type(), g, groups, out_channels, at::MemoryFormat::Contiguous);
  for (const auto& [needed, kernel] :
       {std::pair{need_input, kernels.grad_input}, std::pair{need_weight, kernels.grad_weight}}) {
    TORCH_INTERNAL_ASSERT(!needed || !on_nhwc(kernel));
  }
  at::Tensor grad_input = unused(), grad_weight = unused();

  // The tiled path and the depthwise loops run dx and dw in one walk where both passes fall to them.
  const bool tiled_input = need_input && kernels.grad_input == CpuKernel::tiled;
  const bool tiled_weight = need_weight && kernels.grad_weight == CpuKernel::tiled;
  if (tiled_input || tiled_weight) {
    const auto [tiled_dx, tiled_dw] =
        tiled_conv2d_backward(grad_output, input, weight, g, groups, tiled_input, tiled_weight);
    if (tiled_input) grad_input = tiled_dx;
    if (tiled_weight) grad_weight = tiled_dw;
  }
  const bool depthwise_input = need_input && kernels.grad_input == CpuKernel::depthwise;
  const bool depthwise_weight = need_weight && kernels.grad_weight == CpuKernel::depthwise;
  if (depthwise_input || depthwise_weight) {
    if (depthwise_input) grad_input = at::empty_like(input);
    if (depthwise_weight) grad_weight = at::empty_like(weight);
    depthwise_conv2d_backward(grad_output, input, weight, g, depthwise_input ? grad_input : at::Tensor(),
                              depthwise_weight ? grad_weight : at::Tensor());
  }

  if (need_input && kernels.grad_input == CpuKernel::phased) {
    grad_input = phased_grad_input(grad_output, input, weight, g, groups, implicit_conv2d_simd);
  } else if (need_input && kernels.grad_input == CpuKernel::depthwise_simd && g.stride_w == 2) {
    grad_input = at::empty_like(input);
    depthwise_grad_input_stride2_simd(grad_output.const_data_ptr<float>(), weight.const_data_ptr<float>(),
                                      grad_input.mutable_data_ptr<float>(), g);
  } else if (need_input) {
    if (const Conv2dKernel conv2d = column_free_conv2d(kernels.grad_input)) {
      grad_input = grad_input_as_conv2d(grad_output, input, weight, g, groups, conv2d);
    }
  }
  if (need_weight) {
    if (const GradWeightKernel grad_weight_kernel = column_free_grad_weight(kernels.grad_weight)) {
      grad_weight = at::empty_like(weight);
      grad_weight_kernel(grad_output.const_data_ptr<float>(), input.const_data_ptr<float>(),
                         grad_weight.mutable_data_ptr<float>(), g, groups, out_channels);
    }
  }
  return {grad_input, grad_weight, need_bias ? bias_gradient(grad_output) : unused()};
}

// A pass's result in the op's memory format (F.conv2d's rule), with that format's strides.
at::Tensor laid_out(const at::Tensor& result, at::MemoryFormat format) {
  return in_memory_format(in_layout(result, format), format);
}

// The kernels of a convolution whose passes may run on NHWC memory (tiled_nhwc, depthwise_nhwc); nullopt where
// every pass takes the contiguous path (the textbook path, no input channels).
std::optional<CpuKernels> nhwc_candidates(const at::Tensor& input, const at::Tensor& weight, const ConvGeometry& g,
                                          int64_t groups, at::MemoryFormat format) {
  if (host_reference_kernels_enabled() || lacks_input_channels(input)) return std::nullopt;
  return choose_cpu_kernels(input.scalar_type(), g, groups, weight.size(0), format);
}

// A forward on NHWC memory; the direct kernel writes `format` itself (the others channels_last).
at::Tensor nhwc_forward(CpuKernel kernel, const at::Tensor& input, const at::Tensor& weight,
                        const std::optional<at::Tensor>& bias, const ConvGeometry& g, at::MemoryFormat format) {
  switch (kernel) {
    case CpuKernel::depthwise_nhwc: return nhwc_depthwise_conv2d(input, weight, bias, g);
    case CpuKernel::direct_nhwc: return nhwc_direct_conv2d(input, weight, bias, g, format);
    default: return nhwc_conv2d(input, weight, bias, g);
  }
}

// dx and/or dw on NHWC memory (as nhwc_forward, the direct kernel's dx in `format`).
std::pair<at::Tensor, at::Tensor> nhwc_backward(CpuKernel kernel, const at::Tensor& grad_output,
                                                const at::Tensor& input, const at::Tensor& weight,
                                                const ConvGeometry& g, at::MemoryFormat format, bool need_input,
                                                bool need_weight) {
  switch (kernel) {
    case CpuKernel::depthwise_nhwc:
      return nhwc_depthwise_conv2d_backward(grad_output, input, weight, g, need_input, need_weight);
    case CpuKernel::direct_nhwc:
      return {need_input ? nhwc_direct_grad_input(grad_output, input, weight, g, format) : unrequested_output(input),
              need_weight ? nhwc_direct_grad_weight(grad_output, input, weight, g) : unrequested_output(input)};
    default:
      return nhwc_conv2d_backward(grad_output, input, weight, g, need_input, need_weight);
  }
}

at::Tensor conv2d_cpu(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                      at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  const at::MemoryFormat format = conv2d_memory_format(input, weight);
  if (!host_reference_kernels_enabled()) {
    check_conv2d_args(input, weight, bias, stride, padding, dilation, groups);
    const ConvGeometry g = make_geometry(input, weight, stride, padding, dilation);
    const std::optional<CpuKernels> kernels = nhwc_candidates(input, weight, g, groups, format);
    if (kernels && on_nhwc(kernels->forward)) {
      const at::AutoDispatchBelowADInplaceOrView below_autograd;  // as in conv2d_cpu_contiguous
      const std::optional<at::Tensor> contiguous_bias = bias ? std::optional(bias->contiguous()) : std::nullopt;
      return laid_out(nhwc_forward(kernels->forward, input, weight, contiguous_bias, g, format), format);
    }
  }
  return laid_out(conv2d_cpu_contiguous(input, weight, bias, stride, padding, dilation, groups), format);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_backward_cpu(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, std::array<bool, 3> output_mask) {
  const at::MemoryFormat format = conv2d_memory_format(input, weight);
  // The passes that run on NHWC memory; the rest take the contiguous path.
  at::Tensor nhwc_dx, nhwc_dw;
  std::array<bool, 3> rest = output_mask;
  if (!host_reference_kernels_enabled()) {
    check_conv2d_backward_args(grad_output, input, weight, stride, padding, dilation, groups);
    const ConvGeometry g = make_geometry(input, weight, stride, padding, dilation);
    if (const std::optional<CpuKernels> kernels = nhwc_candidates(input, weight, g, groups, format)) {
      const bool dx = output_mask[0] && on_nhwc(kernels->grad_input);
      const bool dw = output_mask[1] && on_nhwc(kernels->grad_weight);
      const at::AutoDispatchBelowADInplaceOrView below_autograd;
      if (dx && dw && kernels->grad_input == kernels->grad_weight) {  // one walk for both
        std::tie(nhwc_dx, nhwc_dw) =
            nhwc_backward(kernels->grad_input, grad_output, input, weight, g, format, true, true);
      } else {
        if (dx) {
          nhwc_dx = nhwc_backward(kernels->grad_input, grad_output, input, weight, g, format, true, false).first;
        }
        if (dw) {
          nhwc_dw = nhwc_backward(kernels->grad_weight, grad_output, input, weight, g, format, false, true).second;
        }
      }
      rest[0] = rest[0] && !dx;
      rest[1] = rest[1] && !dw;
    }
  }
  std::tuple<at::Tensor, at::Tensor, at::Tensor> grads;
  if (rest[0] || rest[1] || !(nhwc_dx.defined() || nhwc_dw.defined())) {
    grads = conv2d_backward_cpu_contiguous(grad_output, input, weight, stride, padding, dilation, groups, rest);
    if (rest[0]) std::get<0>(grads) = laid_out(std::get<0>(grads), format);
    if (rest[1]) std::get<1>(grads) = laid_out(std::get<1>(grads), format);
  } else {  // no copy of the operands to contiguous memory for the bias gradient alone
    grads = {unrequested_output(input), unrequested_output(input),
             rest[2] ? bias_gradient(grad_output) : unrequested_output(input)};
  }
  if (nhwc_dx.defined() && output_mask[0] && !rest[0]) std::get<0>(grads) = laid_out(nhwc_dx, format);
  if (nhwc_dw.defined() && output_mask[1] && !rest[1]) std::get<1>(grads) = laid_out(nhwc_dw, format);
  return grads;
}

}  // namespace

}  // namespace conv_ext::cpu

TORCH_LIBRARY_IMPL(conv_ext, CPU, m) {
  m.impl("conv2d", &conv_ext::cpu::conv2d_cpu);
  m.impl("conv2d_backward", &conv_ext::cpu::conv2d_backward_cpu);
}
