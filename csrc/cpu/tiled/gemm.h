// C = A . B on strided matrices, for the tiles of the tiled path (gemm.cpp). float32 runs our own kernel
// (gemm_simd.cpp) where the CPU has AVX-512; every other case runs ATen's GEMM (MKL/OpenBLAS) on views.
#pragma once

#include <cstdint>

#include "cpu/simd/simd_isa.h"
#include "cpu/simd/strided_matrix.h"

namespace conv_ext::cpu {

// C (m x n, rows ldc apart, columns contiguous) = A (m x k) . B (k x n), then
//   accumulate:       C += A . B   (out_t may be wider than scalar_t: float sums of half GEMMs)
//   else, row_bias:   C  = A . B + row_bias[i] on row i
//   else:             C  = A . B
// Single-threaded inside a parallel region, parallel over column panels outside one.
template <typename scalar_t, typename out_t>
void gemm(int64_t m, int64_t n, int64_t k, StridedMatrix<const scalar_t> a, StridedMatrix<const scalar_t> b,
          out_t* c, int64_t ldc, bool accumulate, const scalar_t* row_bias = nullptr);

// The AVX-512 float32 kernel behind gemm<float, float> (gemm_simd.cpp), where simd_isa() is AVX-512
// (on AVX2, gemm<float, float> runs ATen's GEMM: see gemm_simd.cpp).
void gemm_simd(int64_t m, int64_t n, int64_t k, StridedMatrix<const float> a, StridedMatrix<const float> b,
               float* c, int64_t ldc, bool accumulate, const float* row_bias);

}  // namespace conv_ext::cpu
