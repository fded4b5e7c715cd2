// The CPU kernels' Python bindings (python_bindings.h).
#include "cpu/python_bindings.h"

#include <torch/extension.h>

#include <string>
#include <utility>
#include <vector>

#include "cpu/kernel_table.h"
#include "cpu/simd/simd_isa.h"
#include "ops/conv2d_args.h"

namespace conv_ext::cpu {

void add_python_bindings(pybind11::module_& m) {
  // The instruction set of the float32 SIMD kernels, by name ("avx512", "avx2", "none"): the CPU's, the one they
  // run on (the CPU's, capped), and the cap.
  m.def("cpu_simd_isa", [] { return std::string(simd_isa_name(cpu_simd_isa())); });
  m.def("simd_isa", [] { return std::string(simd_isa_name(simd_isa())); });
  m.def("simd_isa_limit", [] { return std::string(simd_isa_name(simd_isa_limit())); });
  // Whether the CPU is Intel's: some rules of the kernel table depend on it (MKL's GEMM runs its best code there).
  m.def("_intel_cpu", [] { return intel_cpu(); });
  m.def("set_simd_isa_limit", [](const std::string& name) {
    for (SimdIsa isa : {SimdIsa::none, SimdIsa::avx2, SimdIsa::avx512}) {
      if (name == simd_isa_name(isa)) return set_simd_isa_limit(isa);
    }
    throw pybind11::value_error("conv_ext: unknown instruction set '" + name + "' (expected avx512, avx2 or none)");
  });
  // The CPU kernels that would run the forward, dx and dw of these arguments (after the checks), each with the
  // rule that chose it: [(kernel, rule)] * 3, for conv_ext.explain().
  m.def("_cpu_kernels", [](const at::Tensor& input, const at::Tensor& weight, const std::vector<int64_t>& stride,
                           const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation, int64_t groups) {
    check_conv2d_args(input, weight, std::nullopt, stride, padding, dilation, groups);
    const CpuKernelChoices choices = explain_cpu_kernels(
        input.scalar_type(), make_geometry(input, weight, stride, padding, dilation), groups, weight.size(0),
        conv2d_memory_format(input, weight));
    std::vector<std::pair<std::string, std::string>> named;
    for (const KernelChoice& choice : {choices.forward, choices.grad_input, choices.grad_weight}) {
      named.emplace_back(kernel_name(choice.kernel), choice.rule);
    }
    return named;
  });
  // Every kernel that may run each pass of these arguments, in the table's order: [[name]] * 3.
  m.def("_cpu_kernel_candidates", [](const at::Tensor& input, const at::Tensor& weight,
                                     const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                                     const std::vector<int64_t>& dilation, int64_t groups) {
    check_conv2d_args(input, weight, std::nullopt, stride, padding, dilation, groups);
    const auto candidates = cpu_kernel_candidates(
        input.scalar_type(), make_geometry(input, weight, stride, padding, dilation), groups, weight.size(0),
        conv2d_memory_format(input, weight));
    std::vector<std::vector<std::string>> named;
    for (const auto& pass : candidates) {
      named.emplace_back();
      for (CpuKernel kernel : pass) named.back().emplace_back(kernel_name(kernel));
    }
    return named;
  });
  // The kernel to run a pass (0 forward, 1 dx, 2 dw) wherever it is a candidate; "" for the table's choice.
  m.def("_prefer_cpu_kernel", [](int pass, const std::string& name) {
    if (name.empty()) return prefer_cpu_kernel(pass, std::nullopt);
    const std::optional<CpuKernel> kernel = cpu_kernel_named(name);
    if (!kernel) throw pybind11::value_error("conv_ext: unknown CPU kernel '" + name + "'");
    prefer_cpu_kernel(pass, kernel);
  });
  m.def("_preferred_cpu_kernel", [](int pass) {
    TORCH_CHECK_INDEX(pass >= 0 && pass < 3, "conv_ext: pass must be 0 (forward), 1 (dx) or 2 (dw), got ", pass);
    const std::optional<CpuKernel> kernel = preferred_cpu_kernel(pass);
    return std::string(kernel ? kernel_name(*kernel) : "");
  });
}

}  // namespace conv_ext::cpu
