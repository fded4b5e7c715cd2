// The AVX-512 micro-kernel shared by the GEMM (gemm_avx512.cpp) and the implicit-GEMM convolution
// (implicit_conv2d_avx512.cpp). Include only from x86-64 GCC/Clang translation units (CONV_EXT_X86_AVX512).
//
// It keeps a ROWS x 16*VECTORS block of C in registers: for each step p of the sum, a row of B (VECTORS vectors
// of 16 floats) and, for each row r, a broadcast of A[r][p] and one FMA per vector (fma_step). A is read in place
// at any strides. A "row source" runs the sum over p: it knows where the rows of B lie and which of their lanes
// exist: the rows of a dense matrix (DenseRows, in gemm_avx512.cpp) or the shifted input rows that are the
// columns of a convolution, tap by tap (TapRows, in implicit_conv2d_avx512.cpp).
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "gemm.h"

#define CONV_EXT_AVX512 __attribute__((target("avx512f,fma")))
// The loops over the register block must unroll completely, or GCC keeps the sums in memory.
#define CONV_EXT_UNROLL _Pragma("GCC unroll 16")
// For the helpers that take the register block by reference: inlined, it stays in registers.
#define CONV_EXT_AVX512_INLINE __attribute__((target("avx512f,fma"), always_inline)) inline

namespace conv_ext::cpu::avx512 {

constexpr int64_t kRows = 8;   // rows of C per micro-kernel call
constexpr int64_t kCols = 32;  // columns of C per micro-kernel call (two vectors of 16)

// The lanes [0, count) of a vector (count clamped to [0, 16]).
CONV_EXT_AVX512 inline __mmask16 first_lanes(int64_t count) {
  return count >= 16 ? __mmask16(0xFFFF) : count <= 0 ? __mmask16(0) : __mmask16((1u << count) - 1);
}

// Where the micro-kernel writes: C's block (rows ldc apart) and the lanes of each vector that exist.
struct CBlock {
  float* data;
  int64_t ldc;
  __mmask16 lanes[2];
};

// One step p of the sum: sum[r][v] += A[r][p] * b_row[v], with a_column(r) = A[r][p].
template <int ROWS, int VECTORS, typename AColumn>
CONV_EXT_AVX512_INLINE void fma_step(__m512 (&sum)[ROWS][VECTORS], const AColumn& a_column,
                                     const __m512 (&b_row)[VECTORS]) {
  CONV_EXT_UNROLL for (int r = 0; r < ROWS; ++r) {
    const __m512 a_element = _mm512_set1_ps(a_column(r));
    CONV_EXT_UNROLL for (int v = 0; v < VECTORS; ++v) sum[r][v] = _mm512_fmadd_ps(a_element, b_row[v], sum[r][v]);
  }
}

// The same step with A strided: `a` at A[0][p], rows a_rs apart.
template <int ROWS, int VECTORS>
CONV_EXT_AVX512_INLINE void fma_step(__m512 (&sum)[ROWS][VECTORS], const float* a, int64_t a_rs,
                                     const __m512 (&b_row)[VECTORS]) {
  fma_step<ROWS, VECTORS>(sum, [a, a_rs](int r) { return a[r * a_rs]; }, b_row);
}

// C[0:ROWS, lanes] = sum + (accumulate ? C : row_bias ? row_bias[r] : 0), stored on the lanes that exist.
template <int ROWS, int VECTORS>
CONV_EXT_AVX512_INLINE void store_block(const __m512 (&sum)[ROWS][VECTORS], const CBlock& c, bool accumulate,
                                        const float* row_bias) {
  __m512 c_term[ROWS][VECTORS];
  CONV_EXT_UNROLL for (int r = 0; r < ROWS; ++r) {
    CONV_EXT_UNROLL for (int v = 0; v < VECTORS; ++v) {
      c_term[r][v] = accumulate ? _mm512_maskz_loadu_ps(c.lanes[v], c.data + r * c.ldc + 16 * v)
                     : row_bias ? _mm512_set1_ps(row_bias[r])
                                : _mm512_setzero_ps();
    }
  }
  CONV_EXT_UNROLL for (int r = 0; r < ROWS; ++r) {
    CONV_EXT_UNROLL for (int v = 0; v < VECTORS; ++v) {
      _mm512_mask_storeu_ps(c.data + r * c.ldc + 16 * v, c.lanes[v], _mm512_add_ps(sum[r][v], c_term[r][v]));
    }
  }
}

// C[0:ROWS, lanes] = or += A[0:ROWS, 0:depth] . B[0:depth, lanes]; without accumulate, plus row_bias[r] on row r.
template <int ROWS, int VECTORS, typename RowSource>
CONV_EXT_AVX512 void micro_kernel(int64_t depth, const float* a, int64_t a_rs, int64_t a_cs, const RowSource& b,
                                  const CBlock& c, bool accumulate, const float* row_bias) {
  __m512 sum[ROWS][VECTORS];
  CONV_EXT_UNROLL for (int r = 0; r < ROWS; ++r) {
    CONV_EXT_UNROLL for (int v = 0; v < VECTORS; ++v) sum[r][v] = _mm512_setzero_ps();
  }
  b.template sum_into<ROWS, VECTORS>(depth, a, a_rs, a_cs, sum);
  store_block<ROWS, VECTORS>(sum, c, accumulate, row_bias);
}

// One column panel of C (up to 16*VECTORS columns) over all m rows: blocks of 8 rows, then 4, 2, 1.
template <int VECTORS, typename RowSource>
CONV_EXT_AVX512 void panel(int64_t m, int64_t depth, StridedMatrix<const float> a, const RowSource& b, CBlock c,
                           bool accumulate, const float* row_bias) {
  auto rows = [&](auto kernel, int64_t i, int64_t count) {
    CBlock block = c;
    block.data += i * c.ldc;
    kernel(depth, a.data + i * a.row_stride, a.row_stride, a.col_stride, b, block, accumulate,
           row_bias ? row_bias + i : nullptr);
    return i + count;
  };
  int64_t i = 0;
  while (i + kRows <= m) i = rows(micro_kernel<kRows, VECTORS, RowSource>, i, kRows);
  if (m - i >= 4) i = rows(micro_kernel<4, VECTORS, RowSource>, i, 4);
  if (m - i >= 2) i = rows(micro_kernel<2, VECTORS, RowSource>, i, 2);
  if (m - i >= 1) rows(micro_kernel<1, VECTORS, RowSource>, i, 1);
}

// The micro-kernel for `rows` rows (1 to MAX_ROWS) of C, chosen at run time: one register block of exactly that
// many rows, where panel() would split, e.g., 6 rows into 4 + 2 (a 2 x 1 block is bound by the FMA latency).
template <int MAX_ROWS, int VECTORS, typename RowSource>
CONV_EXT_AVX512 void micro_kernel_rows(int64_t rows, int64_t depth, const float* a, int64_t a_rs, int64_t a_cs,
                                       const RowSource& b, const CBlock& c, bool accumulate, const float* row_bias) {
  if constexpr (MAX_ROWS > 1) {
    if (rows < MAX_ROWS) {
      micro_kernel_rows<MAX_ROWS - 1, VECTORS>(rows, depth, a, a_rs, a_cs, b, c, accumulate, row_bias);
      return;
    }
  }
  micro_kernel<MAX_ROWS, VECTORS>(depth, a, a_rs, a_cs, b, c, accumulate, row_bias);
}

// A panel of `cols` columns (1 to 32): the one- or two-vector kernel.
template <typename RowSource>
CONV_EXT_AVX512 void any_panel(int64_t m, int64_t depth, StridedMatrix<const float> a, const RowSource& b, CBlock c,
                               int64_t cols, bool accumulate, const float* row_bias) {
  c.lanes[0] = first_lanes(cols);
  c.lanes[1] = first_lanes(cols - 16);
  if (cols > 16) {
    panel<2>(m, depth, a, b, c, accumulate, row_bias);
  } else {
    panel<1>(m, depth, a, b, c, accumulate, row_bias);
  }
}

}  // namespace conv_ext::cpu::avx512
