// The CPU implementations of the two ops: the shared orchestration with the CPU column kernels.
#include <torch/library.h>

#include "../conv2d.h"
#include "tiled_conv2d.h"

namespace conv_ext {

namespace {

// The fast tiled path, or (test switch) the shared orchestration with the device bodies run on the host.
at::Tensor conv2d_cpu(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                      at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  if (host_reference_kernels_enabled()) {
    return conv2d_forward_impl(input, weight, bias, stride, padding, dilation, groups, host_reference_kernels());
  }
  return cpu::conv2d_forward_tiled(input, weight, bias, stride, padding, dilation, groups);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_backward_cpu(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, std::array<bool, 3> output_mask) {
  if (host_reference_kernels_enabled()) {
    return conv2d_backward_impl(grad_output, input, weight, stride, padding, dilation, groups, output_mask,
                                host_reference_kernels());
  }
  return cpu::conv2d_backward_tiled(grad_output, input, weight, stride, padding, dilation, groups, output_mask);
}

}  // namespace

}  // namespace conv_ext

TORCH_LIBRARY_IMPL(conv_ext, CPU, m) {
  m.impl("conv2d", &conv_ext::conv2d_cpu);
  m.impl("conv2d_backward", &conv_ext::conv2d_backward_cpu);
}
