// The forward op's autograd, in C++: saves input and weight, and its backward is the backward op. This is the
// same rule as conv_ext/ops.py's _setup_context/_backward (which Conv2dFunction uses), registered here so that a
// call of the op pays no Python on its way through autograd: with torch.library's Python autograd, a small
// convolution's forward+backward spent more time in Python than in its kernels (on a GPU above all). The backward
// op's own autograd (double backward) stays in Python (ops.py): it runs only under create_graph.
#include <torch/autograd.h>
#include <torch/library.h>

#include <optional>

#include "ops/conv2d_ops.h"

namespace conv_ext {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class Conv2dAutograd : public torch::autograd::Function<Conv2dAutograd> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& weight,
                            const std::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                            at::IntArrayRef dilation, int64_t groups) {
    // Only the input and the weight are saved: the backward recomputes the columns chunk by chunk.
    ctx->save_for_backward({input, weight});
    ctx->saved_data["stride"] = stride.vec();
    ctx->saved_data["padding"] = padding.vec();
    ctx->saved_data["dilation"] = dilation.vec();
    ctx->saved_data["groups"] = groups;
    ctx->saved_data["has_bias"] = bias.has_value();
    const at::AutoDispatchBelowADInplaceOrView below_autograd;
    return conv2d_op(input, weight, bias, stride, padding, dilation, groups);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const std::array<bool, 3> output_mask{ctx->needs_input_grad(0), ctx->needs_input_grad(1),
                                          ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(2)};
    // One gradient per forward argument: input, weight, bias, then none for stride, padding, dilation, groups.
    variable_list grads(7);
    if (!(output_mask[0] || output_mask[1] || output_mask[2])) return grads;
    const std::vector<int64_t> stride = ctx->saved_data["stride"].toIntVector();
    const std::vector<int64_t> padding = ctx->saved_data["padding"].toIntVector();
    const std::vector<int64_t> dilation = ctx->saved_data["dilation"].toIntVector();
    // Under create_graph the backward op goes through its own autograd (double backward); else straight below it.
    std::optional<at::AutoDispatchBelowADInplaceOrView> below_autograd;
    if (!at::GradMode::is_enabled()) below_autograd.emplace();
    const auto [grad_input, grad_weight, grad_bias] =
        conv2d_backward_op(grad_outputs[0], saved[0], saved[1], stride, padding, dilation,
                           ctx->saved_data["groups"].toInt(), output_mask);
    if (output_mask[0]) grads[0] = grad_input;
    if (output_mask[1]) grads[1] = grad_weight;
    if (output_mask[2]) grads[2] = grad_bias;
    return grads;
  }
};

at::Tensor conv2d_autograd(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                           at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                           int64_t groups) {
  const bool records_graph = at::GradMode::is_enabled() &&
                             (input.requires_grad() || weight.requires_grad() || (bias && bias->requires_grad()));
  if (!records_graph) {  // nothing to differentiate: straight to the kernel, no graph node and nothing saved
    const at::AutoDispatchBelowADInplaceOrView below_autograd;
    return conv2d_op(input, weight, bias, stride, padding, dilation, groups);
  }
  return Conv2dAutograd::apply(input, weight, bias, stride, padding, dilation, groups);
}

}  // namespace

}  // namespace conv_ext

TORCH_LIBRARY_IMPL(conv_ext, Autograd, m) { m.impl("conv2d", &conv_ext::conv2d_autograd); }
