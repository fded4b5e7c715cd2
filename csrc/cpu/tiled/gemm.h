// C = A . B on strided matrices, for the tiles of the tiled path (gemm.cpp): ATen's GEMM (MKL or OpenBLAS) on
// views of the operands, every dtype. (An AVX-512 float32 GEMM of our own ran here until MKL measured faster on
// the layers of real networks: 512->512 3x3 on 7x7 at batch 1, forward 2.42 against 1.23 ms on an Intel Xeon, and
// on AVX2 it had already lost every suite shape on a Zen 3.)
#pragma once

#include <cstdint>

#include "cpu/simd/strided_matrix.h"

namespace conv_ext::cpu {

// C (m x n, rows ldc apart, columns contiguous) = A (m x k) . B (k x n), then
//   accumulate:   C += A . B   (out_t may be wider than scalar_t: float sums of half GEMMs)
//   else, bias:   C  = A . B + bias, a bias broadcast by its strides: {b, 1, 0} adds b[i] to row i, {b, 0, 1}
//                 b[j] to column j
//   else:         C  = A . B
// Single-threaded inside a parallel region, parallel over column panels outside one.
template <typename scalar_t, typename out_t>
void gemm(int64_t m, int64_t n, int64_t k, StridedMatrix<const scalar_t> a, StridedMatrix<const scalar_t> b,
          out_t* c, int64_t ldc, bool accumulate, StridedMatrix<const scalar_t> bias = {nullptr, 0, 0});

}  // namespace conv_ext::cpu
