// The registered ops called through the dispatcher (conv2d_ops.h): each typed handle is looked up once.
#include "ops/conv2d_ops.h"

#include <ATen/core/dispatch/Dispatcher.h>

namespace conv_ext {

at::Tensor conv2d_op(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                     at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("conv_ext::conv2d", "")
                             .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                               at::IntArrayRef, at::IntArrayRef, at::IntArrayRef, int64_t)>();
  return op.call(input, weight, bias, stride, padding, dilation, groups);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_backward_op(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, std::array<bool, 3> output_mask) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("conv_ext::conv2d_backward", "")
                             .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
                                 const at::Tensor&, const at::Tensor&, const at::Tensor&, at::IntArrayRef,
                                 at::IntArrayRef, at::IntArrayRef, int64_t, std::array<bool, 3>)>();
  return op.call(grad_output, input, weight, stride, padding, dilation, groups, output_mask);
}

}  // namespace conv_ext
