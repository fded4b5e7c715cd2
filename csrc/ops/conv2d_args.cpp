// The argument checks shared by every device and the Meta kernels, the geometry of the arguments, and the results
// of an input without channels.
#include "ops/conv2d_args.h"

#include <c10/core/MemoryFormat.h>
#include <c10/util/strides.h>

namespace conv_ext {

namespace {

void check_pair(const char* name, at::IntArrayRef values, bool allow_zero) {
  TORCH_CHECK_VALUE(values.size() == 2, "conv_ext.conv2d: ", name, " must have 2 elements (h, w), got ", values);
  for (int64_t v : values) {
    TORCH_CHECK_VALUE(allow_zero ? v >= 0 : v > 0, "conv_ext.conv2d: ", name, " must be ",
                      allow_zero ? "non-negative" : "positive", ", got ", values);
  }
}

bool is_supported_dtype(at::ScalarType dtype) {
  return dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf || dtype == at::kBFloat16;
}

void check_tensor_like_input(const char* name, const at::Tensor& tensor, const at::Tensor& input) {
  TORCH_CHECK_TYPE(tensor.scalar_type() == input.scalar_type(), "conv_ext.conv2d: ", name, " dtype ",
                   tensor.scalar_type(), " does not match input dtype ", input.scalar_type());
  TORCH_CHECK_VALUE(tensor.device() == input.device(), "conv_ext.conv2d: ", name, " is on ", tensor.device(),
                    " but input is on ", input.device());
}

}  // namespace

std::vector<c10::SymInt> check_conv2d_args(
    const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  TORCH_CHECK_VALUE(input.dim() == 4, "conv_ext.conv2d: expected a 4-D input (N, C, H, W), got ", input.dim(),
                    "-D input of size ", input.sym_sizes());
  TORCH_CHECK_VALUE(weight.dim() == 4, "conv_ext.conv2d: expected a 4-D weight (out_channels, in_channels/groups, "
                    "kH, kW), got ", weight.dim(), "-D weight of size ", weight.sym_sizes());
  TORCH_CHECK_TYPE(is_supported_dtype(input.scalar_type()), "conv_ext.conv2d: input dtype ", input.scalar_type(),
                   " is not supported (expected float32, float64, float16 or bfloat16)");
  check_tensor_like_input("weight", weight, input);
  check_pair("stride", stride, /*allow_zero=*/false);
  check_pair("padding", padding, /*allow_zero=*/true);
  check_pair("dilation", dilation, /*allow_zero=*/false);
  TORCH_CHECK_VALUE(groups > 0, "conv_ext.conv2d: groups must be positive, got ", groups);

  const c10::SymInt& in_channels = input.sym_size(1);
  const c10::SymInt& out_channels = weight.sym_size(0);
  TORCH_CHECK_VALUE(in_channels % groups == 0, "conv_ext.conv2d: in_channels (", in_channels,
                    ") is not divisible by groups (", groups, ")");
  TORCH_CHECK_VALUE(out_channels % groups == 0, "conv_ext.conv2d: out_channels (", out_channels,
                    ") is not divisible by groups (", groups, ")");
  TORCH_CHECK_VALUE(in_channels == weight.sym_size(1) * groups, "conv_ext.conv2d: input has ", in_channels,
                    " channels but weight of size ", weight.sym_sizes(), " with groups=", groups, " expects ",
                    weight.sym_size(1) * groups, " (weight.size(1) * groups)");
  if (bias.has_value()) {
    check_tensor_like_input("bias", *bias, input);
    TORCH_CHECK_VALUE(bias->dim() == 1 && bias->sym_size(0) == out_channels, "conv_ext.conv2d: expected bias of "
                      "size (", out_channels, ") (out_channels), got ", bias->sym_sizes());
  }

  std::vector<c10::SymInt> output_shape{input.sym_size(0), in_channels == 0 ? c10::SymInt(0) : out_channels};
  for (int64_t d = 0; d < 2; ++d) {
    const c10::SymInt& length = input.sym_size(2 + d);
    const int64_t kernel = weight.sym_size(2 + d).guard_int(__FILE__, __LINE__);
    const int64_t dilated_kernel = dilation[d] * (kernel - 1) + 1;
    TORCH_CHECK_VALUE(kernel > 0 && length + 2 * padding[d] >= dilated_kernel,
                      "conv_ext.conv2d: kernel size ", weight.sym_sizes().slice(2), " (", dilated_kernel,
                      " after dilation ", dilation, ") is larger than the padded input ", input.sym_sizes().slice(2),
                      " + 2 * padding ", padding, ": the output would be empty");
    output_shape.push_back(conv_output_length(length, kernel, stride[d], padding[d], dilation[d]));
  }
  return output_shape;
}

at::Tensor conv2d_without_input_channels(const at::Tensor& input, c10::SymIntArrayRef output_shape) {
  return at::empty_symint(output_shape, input.options());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_backward_without_input_channels(
    const at::Tensor& input, const at::Tensor& weight, std::array<bool, 3> output_mask) {
  auto zeros_or_unused = [&](bool wanted, c10::SymIntArrayRef size) {
    return wanted ? at::zeros_symint(size, input.options()) : unrequested_output(input);
  };
  return {zeros_or_unused(output_mask[0], input.sym_sizes()), zeros_or_unused(output_mask[1], weight.sym_sizes()),
          zeros_or_unused(output_mask[2], weight.sym_sizes().slice(0, 1))};
}

at::MemoryFormat conv2d_memory_format(const at::Tensor& input, const at::Tensor& weight) {
  constexpr auto channels_last = at::MemoryFormat::ChannelsLast;
  return input.suggest_memory_format() == channels_last || weight.suggest_memory_format() == channels_last
             ? channels_last
             : at::MemoryFormat::Contiguous;
}

at::Tensor in_memory_format(const at::Tensor& result, at::MemoryFormat format) {
  const at::Tensor laid_out = result.contiguous(format);
  // The strides a fresh tensor of the format has, as torch's kernels and the Meta kernels allocate: contiguous()
  // keeps a tensor that already is, whose size-1 dimensions may carry other strides (same memory, no copy).
  c10::DimVector strides = c10::contiguous_strides(laid_out.sizes());
  if (format == at::MemoryFormat::ChannelsLast) {
    const std::vector<int64_t> channels_last = c10::get_channels_last_strides_2d(laid_out.sizes());
    strides.assign(channels_last.begin(), channels_last.end());
  }
  return laid_out.strides().equals(strides) ? laid_out : laid_out.as_strided(laid_out.sizes(), strides);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> in_memory_format(std::tuple<at::Tensor, at::Tensor, at::Tensor> grads,
                                                                std::array<bool, 3> output_mask,
                                                                at::MemoryFormat format) {
  auto& [grad_input, grad_weight, grad_bias] = grads;
  if (output_mask[0]) grad_input = in_memory_format(grad_input, format);
  if (output_mask[1]) grad_weight = in_memory_format(grad_weight, format);
  return grads;
}

void check_conv2d_backward_args(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  const auto output_shape = check_conv2d_args(input, weight, std::nullopt, stride, padding, dilation, groups);
  check_tensor_like_input("grad_output", grad_output, input);
  TORCH_CHECK_VALUE(grad_output.sym_sizes().equals(output_shape), "conv_ext.conv2d_backward: expected grad_output "
                    "of size ", c10::SymIntArrayRef(output_shape), " (the output size), got ", grad_output.sym_sizes());
}

ConvGeometry make_geometry(const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
                           at::IntArrayRef padding, at::IntArrayRef dilation) {
  ConvGeometry g{};
  g.batch = input.size(0);
  g.channels = input.size(1);
  g.height = input.size(2);
  g.width = input.size(3);
  g.kernel_h = weight.size(2);
  g.kernel_w = weight.size(3);
  g.stride_h = stride[0];
  g.stride_w = stride[1];
  g.pad_h = padding[0];
  g.pad_w = padding[1];
  g.dilation_h = dilation[0];
  g.dilation_w = dilation[1];
  g.out_h = conv_output_length(g.height, g.kernel_h, g.stride_h, g.pad_h, g.dilation_h);
  g.out_w = conv_output_length(g.width, g.kernel_w, g.stride_w, g.pad_w, g.dilation_w);
  return g;
}

}  // namespace conv_ext
