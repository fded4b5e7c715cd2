// The op schemas, the argument checks shared by every backend, the Meta kernels and the Python module.
#include <torch/extension.h>
#include <torch/library.h>

#include <atomic>

#include "conv2d.h"
#include "cpu/gemm.h"
#include "cpu/tiled_conv2d.h"

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

std::atomic<int64_t> g_workspace_limit_bytes{int64_t{64} << 20};
std::atomic<int64_t> g_peak_workspace_bytes{0};
std::atomic<bool> g_host_reference_kernels{false};

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

int64_t workspace_limit_bytes() { return g_workspace_limit_bytes.load(); }

void set_workspace_limit_bytes(int64_t bytes) {
  TORCH_CHECK_VALUE(bytes > 0, "conv_ext: the workspace limit must be a positive number of bytes, got ", bytes);
  g_workspace_limit_bytes.store(bytes);
}

int64_t peak_workspace_bytes() { return g_peak_workspace_bytes.load(); }
void reset_peak_workspace_bytes() { g_peak_workspace_bytes.store(0); }

void record_workspace_bytes(int64_t bytes) {
  int64_t seen = g_peak_workspace_bytes.load();
  while (bytes > seen && !g_peak_workspace_bytes.compare_exchange_weak(seen, bytes)) {
  }
}

bool host_reference_kernels_enabled() { return g_host_reference_kernels.load(); }
void set_host_reference_kernels_enabled(bool enabled) { g_host_reference_kernels.store(enabled); }

namespace {

// Meta kernels: the same checks and the same output-size formula, on symbolic sizes, for tracing.
at::Tensor conv2d_meta(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                       at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  return at::empty_symint(check_conv2d_args(input, weight, bias, stride, padding, dilation, groups),
                          input.options());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_backward_meta(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, std::array<bool, 3> output_mask) {
  check_conv2d_backward_args(grad_output, input, weight, stride, padding, dilation, groups);
  auto unused = [&] { return unrequested_output(input); };
  return {output_mask[0] ? at::empty_symint(input.sym_sizes(), input.options()) : unused(),
          output_mask[1] ? at::empty_symint(weight.sym_sizes(), weight.options()) : unused(),
          output_mask[2] ? at::empty_symint({weight.sym_size(0)}, weight.options()) : unused()};
}

}  // namespace

void check_conv2d_backward_args(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  const auto output_shape = check_conv2d_args(input, weight, std::nullopt, stride, padding, dilation, groups);
  check_tensor_like_input("grad_output", grad_output, input);
  TORCH_CHECK_VALUE(grad_output.sym_sizes().equals(output_shape), "conv_ext.conv2d_backward: expected grad_output "
                    "of size ", c10::SymIntArrayRef(output_shape), " (the output size), got ", grad_output.sym_sizes());
}

namespace {

// The index math of im2col.h on a geometry given as its 14 fields in declaration order, for the tests: it
// checks 64-bit offsets on problems far too large to allocate.
ConvGeometry geometry_from_fields(const std::vector<int64_t>& f) {
  TORCH_CHECK_VALUE(f.size() == 14, "conv_ext: a geometry has 14 fields, got ", f.size());
  return ConvGeometry{f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11], f[12], f[13]};
}

// The index math in the index type the launchers would pick for this geometry (with_index_type).
int64_t im2col_source_offset_of(const std::vector<int64_t>& fields, int64_t index) {
  int64_t source = 0;
  with_index_type(geometry_from_fields(fields), [&](const auto& g) {
    source = im2col_source_offset(static_cast<decltype(g.batch)>(index), g);
  });
  return source;
}

std::vector<int64_t> col2im_column_offsets(const std::vector<int64_t>& fields, int64_t index) {
  std::vector<int64_t> offsets;
  with_index_type(geometry_from_fields(fields), [&](const auto& g) {
    using index_t = decltype(g.batch);
    col2im_for_each_source(static_cast<index_t>(index), g, [&](index_t offset) { offsets.push_back(offset); });
  });
  return offsets;
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

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "conv_ext: im2col + GEMM 2-D convolution; the ops live in torch.ops.conv_ext";
  m.def("workspace_limit_bytes", &conv_ext::workspace_limit_bytes);
  m.def("set_workspace_limit_bytes", &conv_ext::set_workspace_limit_bytes);
  m.def("peak_workspace_bytes", &conv_ext::peak_workspace_bytes);
  m.def("reset_peak_workspace_bytes", &conv_ext::reset_peak_workspace_bytes);
  m.def("host_reference_kernels_enabled", &conv_ext::host_reference_kernels_enabled);
  m.def("set_host_reference_kernels_enabled", &conv_ext::set_host_reference_kernels_enabled);
  // The instruction set of the float32 SIMD kernels, by name ("avx512", "avx2", "none"): the CPU's, the one they
  // run on (the CPU's, capped), and the cap.
  m.def("cpu_simd_isa", [] { return std::string(conv_ext::cpu::simd_isa_name(conv_ext::cpu::cpu_simd_isa())); });
  m.def("simd_isa", [] { return std::string(conv_ext::cpu::simd_isa_name(conv_ext::cpu::simd_isa())); });
  m.def("simd_isa_limit", [] { return std::string(conv_ext::cpu::simd_isa_name(conv_ext::cpu::simd_isa_limit())); });
  m.def("set_simd_isa_limit", [](const std::string& name) {
    using conv_ext::cpu::SimdIsa;
    for (SimdIsa isa : {SimdIsa::none, SimdIsa::avx2, SimdIsa::avx512}) {
      if (name == conv_ext::cpu::simd_isa_name(isa)) return conv_ext::cpu::set_simd_isa_limit(isa);
    }
    throw pybind11::value_error("conv_ext: unknown instruction set '" + name + "' (expected avx512, avx2 or none)");
  });
  m.def("simd_gemm_enabled", &conv_ext::cpu::simd_gemm_enabled);
  m.def("set_simd_gemm_enabled", &conv_ext::cpu::set_simd_gemm_enabled);
  m.def("_im2col_source_offset", &conv_ext::im2col_source_offset_of);
  m.def("_fits_int32_indexing", [](const std::vector<int64_t>& fields) {
    return conv_ext::geometry_from_fields(fields).fits_int32_indexing();
  });
  m.def("_col2im_column_offsets", &conv_ext::col2im_column_offsets);
  // For tests: the CPU kernels that would run the forward, dx and dw of these arguments (after the checks).
  m.def("_cpu_kernels", [](const at::Tensor& input, const at::Tensor& weight, const std::vector<int64_t>& stride,
                           const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation, int64_t groups) {
    conv_ext::check_conv2d_args(input, weight, std::nullopt, stride, padding, dilation, groups);
    const auto kernels = conv_ext::cpu::choose_cpu_kernels(
        input, weight, conv_ext::make_geometry(input, weight, stride, padding, dilation), groups);
    return std::vector<std::string>{conv_ext::cpu::kernel_name(kernels.forward),
                                    conv_ext::cpu::kernel_name(kernels.grad_input),
                                    conv_ext::cpu::kernel_name(kernels.grad_weight)};
  });
  m.def("cuda_built", [] {
#ifdef CONV_EXT_WITH_CUDA
    return true;
#else
    return false;
#endif
  });
}
