// The Python module conv_ext._C: the forward op for eager calls, the settings (conv_ext/settings.py), the test
// hooks of the index math, and the CPU kernels' own bindings (cpu/python_bindings.h).
#include <torch/extension.h>

#include "cpu/python_bindings.h"
#include "ops/conv2d_ops.h"
#include "ops/settings.h"
#include "textbook/im2col.h"

namespace conv_ext {

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

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "conv_ext: a 2-D convolution from scratch; the ops live in torch.ops.conv_ext";
  // The forward op, bound directly: conv_ext.conv2d's eager calls (conv_ext/ops.py) go through the dispatcher
  // as torch.ops.conv_ext.conv2d would, without its boxed argument parsing (about 4 us a call).
  m.def("conv2d", &conv_ext::conv2d_op);
  m.def("workspace_limit_bytes", &conv_ext::workspace_limit_bytes);
  m.def("set_workspace_limit_bytes", &conv_ext::set_workspace_limit_bytes);
  m.def("peak_workspace_bytes", &conv_ext::peak_workspace_bytes);
  m.def("reset_peak_workspace_bytes", &conv_ext::reset_peak_workspace_bytes);
  m.def("host_reference_kernels_enabled", &conv_ext::host_reference_kernels_enabled);
  m.def("set_host_reference_kernels_enabled", &conv_ext::set_host_reference_kernels_enabled);
  m.def("_im2col_source_offset", &conv_ext::im2col_source_offset_of);
  m.def("_fits_int32_indexing", [](const std::vector<int64_t>& fields) {
    return conv_ext::geometry_from_fields(fields).fits_int32_indexing();
  });
  m.def("_col2im_column_offsets", &conv_ext::col2im_column_offsets);
  conv_ext::cpu::add_python_bindings(m);
  m.def("cuda_built", [] {
#ifdef CONV_EXT_WITH_CUDA
    return true;
#else
    return false;
#endif
  });
}
