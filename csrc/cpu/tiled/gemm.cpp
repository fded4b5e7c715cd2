// The GEMM of the CPU tiles: ATen's, on views of the operands.
#include "cpu/tiled/gemm.h"

#include <ATen/ATen.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <type_traits>

namespace conv_ext::cpu {

namespace {

template <typename T>
at::Tensor matrix_view(StridedMatrix<const T> matrix, int64_t rows, int64_t cols) {
  return at::from_blob(const_cast<T*>(matrix.data), {rows, cols}, {matrix.row_stride, matrix.col_stride},
                       at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value));
}

}  // namespace

template <typename scalar_t, typename out_t>
void gemm(int64_t m, int64_t n, int64_t k, StridedMatrix<const scalar_t> a, StridedMatrix<const scalar_t> b,
          out_t* c, int64_t ldc, bool accumulate, StridedMatrix<const scalar_t> bias) {
  if (m == 0 || n == 0) return;
  const at::Tensor a_view = matrix_view(a, m, k), b_view = matrix_view(b, k, n);
  at::Tensor c_view = matrix_view(StridedMatrix<const out_t>{c, ldc, 1}, m, n);
  if (accumulate) {
    if constexpr (std::is_same_v<scalar_t, out_t>) {
      c_view.addmm_(a_view, b_view);
    } else {  // the half types: the product in scalar_t, summed in out_t
      c_view.add_(at::mm(a_view, b_view));
    }
  } else if constexpr (std::is_same_v<scalar_t, out_t>) {
    if (bias.data) {
      at::addmm_out(c_view, matrix_view(bias, m, n), a_view, b_view);
    } else {
      at::mm_out(c_view, a_view, b_view);
    }
  } else {
    TORCH_INTERNAL_ASSERT(false, "gemm: a wider output type is only for accumulating");
  }
}

#define CONV_EXT_INSTANTIATE_GEMM(scalar_t, out_t)                                                     \
  template void gemm<scalar_t, out_t>(int64_t, int64_t, int64_t, StridedMatrix<const scalar_t>,     \
                                      StridedMatrix<const scalar_t>, out_t*, int64_t, bool,         \
                                      StridedMatrix<const scalar_t>);
CONV_EXT_INSTANTIATE_GEMM(float, float)
CONV_EXT_INSTANTIATE_GEMM(double, double)
CONV_EXT_INSTANTIATE_GEMM(c10::Half, c10::Half)
CONV_EXT_INSTANTIATE_GEMM(c10::Half, float)
CONV_EXT_INSTANTIATE_GEMM(c10::BFloat16, c10::BFloat16)
CONV_EXT_INSTANTIATE_GEMM(c10::BFloat16, float)
#undef CONV_EXT_INSTANTIATE_GEMM

}  // namespace conv_ext::cpu
