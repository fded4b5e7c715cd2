// The op schemas (torch.ops.conv_ext.conv2d / conv2d_backward) and their Meta kernels: the same checks, the same
// output-size formula and memory format, on symbolic sizes, for tracing. Each device registers its kernels beside
// its code (cpu/conv2d_cpu.cpp, cuda/conv2d_cuda.cpp); the autograd is conv2d_autograd.cpp.
#include <torch/library.h>

#include "ops/conv2d_args.h"

namespace conv_ext {

namespace {

at::Tensor conv2d_meta(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                       at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  return at::empty_symint(check_conv2d_args(input, weight, bias, stride, padding, dilation, groups),
                          input.options().memory_format(conv2d_memory_format(input, weight)));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_backward_meta(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, std::array<bool, 3> output_mask) {
  check_conv2d_backward_args(grad_output, input, weight, stride, padding, dilation, groups);
  auto unused = [&] { return unrequested_output(input); };
  const at::MemoryFormat format = conv2d_memory_format(input, weight);
  return {output_mask[0] ? at::empty_symint(input.sym_sizes(), input.options().memory_format(format)) : unused(),
          output_mask[1] ? at::empty_symint(weight.sym_sizes(), weight.options().memory_format(format)) : unused(),
          output_mask[2] ? at::empty_symint({weight.sym_size(0)}, weight.options()) : unused()};
}

}  // namespace

}  // namespace conv_ext

TORCH_LIBRARY(conv_ext, m) {
  m.def("conv2d(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[2] padding, int[2] dilation, "
        "int groups) -> Tensor");
  m.def("conv2d_backward(Tensor grad_output, Tensor input, Tensor weight, int[2] stride, int[2] padding, "
        "int[2] dilation, int groups, bool[3] output_mask) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(conv_ext, Meta, m) {
  m.impl("conv2d", &conv_ext::conv2d_meta);
  m.impl("conv2d_backward", &conv_ext::conv2d_backward_meta);
}
