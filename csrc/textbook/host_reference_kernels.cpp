// The reference host launchers: plain loops over the per-element bodies of im2col.h, the exact code that the
// CUDA kernels run per thread, in the same index type. They are what the CPU tests use to check the device math
// without a GPU.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include "textbook/textbook_conv2d.h"

namespace conv_ext {

namespace {

constexpr int64_t kGrainSize = 4096;

void im2col_host_reference(const at::Tensor& input, const at::Tensor& columns, const ConvGeometry& geometry) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "im2col_host_reference", [&] {
    const scalar_t* input_data = input.const_data_ptr<scalar_t>();
    scalar_t* columns_data = columns.mutable_data_ptr<scalar_t>();
    with_index_type(geometry, [&](const auto& indexed) {
      using index_t = decltype(indexed.batch);
      at::parallel_for(0, geometry.channel_columns(), kGrainSize, [&](int64_t begin, int64_t end) {
        for (int64_t index = begin; index < end; ++index) {
          im2col_element(static_cast<index_t>(index), input_data, columns_data, indexed);
        }
      });
    });
  });
}

void col2im_host_reference(const at::Tensor& columns, const at::Tensor& grad_input, const ConvGeometry& geometry) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, columns.scalar_type(), "col2im_host_reference", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* columns_data = columns.const_data_ptr<scalar_t>();
    scalar_t* grad_input_data = grad_input.mutable_data_ptr<scalar_t>();
    with_index_type(geometry, [&](const auto& indexed) {
      using index_t = decltype(indexed.batch);
      at::parallel_for(0, geometry.input_numel(), kGrainSize, [&](int64_t begin, int64_t end) {
        for (int64_t index = begin; index < end; ++index) {
          col2im_gather_element<scalar_t, acc_t>(static_cast<index_t>(index), columns_data, grad_input_data,
                                                 indexed);
        }
      });
    });
  });
}

}  // namespace

const ColumnKernels& host_reference_kernels() {
  static const ColumnKernels kernels{&im2col_host_reference, &col2im_host_reference};
  return kernels;
}

}  // namespace conv_ext
