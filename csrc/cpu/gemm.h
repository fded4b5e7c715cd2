// C = A . B on strided matrices, for the tiles of the CPU path (gemm.cpp). float32 runs our own AVX-512 kernel
// (gemm_avx512.cpp) where the CPU has AVX-512; every other case runs ATen's GEMM (MKL/OpenBLAS) on views.
#pragma once

#include <cstdint>

namespace conv_ext::cpu {

// A matrix in memory: element (i, j) at data[i * row_stride + j * col_stride].
template <typename T>
struct StridedMatrix {
  T* data;
  int64_t row_stride, col_stride;
};

// C (m x n, rows ldc apart, columns contiguous) = A (m x k) . B (k x n), then
//   accumulate:       C += A . B   (out_t may be wider than scalar_t: float sums of half GEMMs)
//   else, row_bias:   C  = A . B + row_bias[i] on row i
//   else:             C  = A . B
// Single-threaded inside a parallel region, parallel over column panels outside one.
template <typename scalar_t, typename out_t>
void gemm(int64_t m, int64_t n, int64_t k, StridedMatrix<const scalar_t> a, StridedMatrix<const scalar_t> b,
          out_t* c, int64_t ldc, bool accumulate, const scalar_t* row_bias = nullptr);

// Whether this CPU can run our AVX-512 kernel, and whether float32 GEMMs use it (default: when it can). The
// switch (settings.aten_gemm() in Python) lets the tests and the benchmark run ATen's GEMM on the same machine.
bool avx512_gemm_available();
bool avx512_gemm_enabled();
void set_avx512_gemm_enabled(bool enabled);

// The AVX-512 float32 kernel behind gemm<float, float> (gemm_avx512.cpp); callers check avx512_gemm_available().
void gemm_avx512(int64_t m, int64_t n, int64_t k, StridedMatrix<const float> a, StridedMatrix<const float> b,
                 float* c, int64_t ldc, bool accumulate, const float* row_bias);

}  // namespace conv_ext::cpu
