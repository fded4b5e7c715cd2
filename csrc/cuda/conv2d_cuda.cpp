// The CUDA implementations of the two ops: the textbook path (textbook/textbook_conv2d.cpp) with the CUDA column
// kernels. The GEMMs go through ATen (cuBLAS); everything runs on the current stream of the input's device.
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ops/conv2d_args.h"
#include "textbook/textbook_conv2d.h"

namespace conv_ext {

namespace {

at::Tensor conv2d_cuda(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                       at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  // Custom ops get no device guard from the dispatcher: allocations, GEMMs and kernels follow the input.
  const at::cuda::OptionalCUDAGuard device_guard(input.device());
  return in_memory_format(textbook_conv2d(input, weight, bias, stride, padding, dilation, groups, cuda_kernels()),
                          conv2d_memory_format(input, weight));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_backward_cuda(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, std::array<bool, 3> output_mask) {
  const at::cuda::OptionalCUDAGuard device_guard(input.device());
  return in_memory_format(textbook_conv2d_backward(grad_output, input, weight, stride, padding, dilation, groups,
                                                   output_mask, cuda_kernels()),
                          output_mask, conv2d_memory_format(input, weight));
}

}  // namespace

}  // namespace conv_ext

TORCH_LIBRARY_IMPL(conv_ext, CUDA, m) {
  m.impl("conv2d", &conv_ext::conv2d_cuda);
  m.impl("conv2d_backward", &conv_ext::conv2d_backward_cuda);
}
