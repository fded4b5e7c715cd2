// The GEMM of the CPU tiles: ATen's, on views of the operands; small float32 products as loops of ours.
#include "cpu/tiled/gemm.h"

#include <ATen/ATen.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <type_traits>

#define CONV_EXT_SIMD_BODY "cpu/tiled/small_gemm_simd.inc"
#include "cpu/simd/simd_for_each_isa.h"

namespace conv_ext::cpu {

namespace {

// At most this many multiply-adds, a float32 product runs as loops of ours (small_gemm_simd.inc): a call of ATen's
// GEMM costs about 1.5 us before its first multiply-add, as long as a whole squeeze-and-excitation layer at batch 1.
// Where the operands run contiguously along the sum (A's rows, B's columns), as dot products (x torch's time,
// AVX-512, Intel Xeon, 2 threads, forward through conv_ext.conv2d, ATen's GEMM against the dot products:
// EfficientNet-B0's 1152->48 1x1 on one pixel, 55296 multiply-adds, 1.33 against 0.92; 32->8 1.67 against 1.14).
// 2^18 and 2^20 measured level on its layers at batches 2 to 8, one loss (48->1152 at batch 4, 0.19 against 0.24).
constexpr int64_t kSmallGemmMaxMultiplyAdds = int64_t{1} << 16;
// And at most this many outputs: each costs a sum across the lanes on top of its k / 16 FMAs, so many outputs of a
// short sum cost more than ATen's call (EfficientNet-B0's 6->144 1x1 on one pixel at batch 32, 4608 outputs of 6
// products: 16 us as dot products, 6 through ATen's GEMM; at batch 1 its 48->1152, 1152 outputs, 8.3 against 10.2).
constexpr int64_t kDotGemmMaxOutputs = int64_t{1} << 11;

// The sums of B's rows take a product of at most this many steps (a broadcast of A and up to four FMAs on a block of
// 64 columns of C): a block of one vector waits on each FMA's latency, about 4 cycles a step, so a narrow product
// with a long sum would take longer than ATen's call. A squeeze-and-excitation layer at batch 1 takes under 2^10
// (AMD EPYC Zen 4, 2 threads, x torch's time, forward+backward through autograd, ATen's GEMM against the sums of
// rows in dx and dw: EfficientNet-B0's 6->144 on one pixel 1.35 against 1.20, 20->480 1.29 against 1.22, 1152->48
// 1.10 against 0.98, 4->96 1.35 against 1.16).
constexpr int64_t kRowGemmMaxSteps = int64_t{1} << 11;

enum class SmallGemm { none, dot, rows };

// Which of our loops takes a product: the dot products (above), else, where B's rows are contiguous, the sums of
// B's rows (a squeeze-and-excitation layer's dx and dw at batch 1, whose dy or sum runs across A's rows).
template <typename scalar_t>
SmallGemm small_gemm(int64_t m, int64_t n, int64_t k, StridedMatrix<const scalar_t> a,
                     StridedMatrix<const scalar_t> b) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (!simd_kernels_enabled() || m * n * k > kSmallGemmMaxMultiplyAdds) return SmallGemm::none;
    if (a.col_stride == 1 && b.row_stride == 1 && m * n <= kDotGemmMaxOutputs) return SmallGemm::dot;
    if (b.col_stride == 1 && m * ((n + 63) / 64) * k <= kRowGemmMaxSteps) return SmallGemm::rows;
  }
  return SmallGemm::none;
}

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
  if constexpr (std::is_same_v<scalar_t, float> && std::is_same_v<out_t, float>) {
    switch (small_gemm(m, n, k, a, b)) {
      case SmallGemm::dot: return CONV_EXT_SIMD_KERNEL(dot_gemm)(m, n, k, a, b, c, ldc, accumulate, bias);
      case SmallGemm::rows: return CONV_EXT_SIMD_KERNEL(row_gemm)(m, n, k, a, b, c, ldc, accumulate, bias);
      case SmallGemm::none: break;
    }
  }
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
