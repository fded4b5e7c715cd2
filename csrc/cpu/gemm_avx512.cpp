// C = A . B in float32 with AVX-512: the GEMM of the CPU tiles (see gemm.h for the contract).
//
// The micro-kernel keeps an 8 x 32 block of C in 16 zmm registers: for each step p of the sum it loads 32
// floats of row p of B (two vectors) and, for each of the 8 rows of A, broadcasts A[i][p] and does two FMAs.
// A is read in place at any strides (its elements are broadcast one by one); B is read in place when its
// rows are contiguous (the columns, grad_output) and packed first otherwise (grad_output transposed, for dw).
// Column tails are masked loads and stores; row tails run the 4-, 2- and 1-row kernels.
#include "gemm.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

namespace conv_ext::cpu {

namespace {

#define CONV_EXT_AVX512 __attribute__((target("avx512f,fma")))
// The loops over the register block must unroll completely, or GCC keeps the sums in memory.
#define CONV_EXT_UNROLL _Pragma("GCC unroll 16")

constexpr int64_t kRows = 8;     // rows of C per micro-kernel call
constexpr int64_t kCols = 32;    // columns of C per micro-kernel call (two vectors of 16)
constexpr int64_t kDepth = 256;  // steps of the sum per pass: a 32-column panel of B (32 KiB) stays in L1

CONV_EXT_AVX512 inline __mmask16 first_lanes(int64_t count) {
  return count >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << count) - 1);
}

// C[0:ROWS, 0:16*VECTORS] (the last vector masked by `last`) = or += A[0:ROWS, 0:depth] . B[0:depth, ...].
template <int ROWS, int VECTORS>
CONV_EXT_AVX512 void micro_kernel(int64_t depth, const float* a, int64_t a_rs, int64_t a_cs, const float* b,
                                  int64_t ldb, float* c, int64_t ldc, __mmask16 last, bool accumulate,
                                  const float* row_bias) {
  __m512 sum[ROWS][VECTORS];
  CONV_EXT_UNROLL for (int r = 0; r < ROWS; ++r) {
    CONV_EXT_UNROLL for (int v = 0; v < VECTORS; ++v) sum[r][v] = _mm512_setzero_ps();
  }
  for (int64_t p = 0; p < depth; ++p, a += a_cs, b += ldb) {
    __m512 b_row[VECTORS];
    CONV_EXT_UNROLL for (int v = 0; v < VECTORS; ++v) {
      b_row[v] = v == VECTORS - 1 ? _mm512_maskz_loadu_ps(last, b + 16 * v) : _mm512_loadu_ps(b + 16 * v);
    }
    CONV_EXT_UNROLL for (int r = 0; r < ROWS; ++r) {
      const __m512 a_element = _mm512_set1_ps(a[r * a_rs]);
      CONV_EXT_UNROLL for (int v = 0; v < VECTORS; ++v) sum[r][v] = _mm512_fmadd_ps(a_element, b_row[v], sum[r][v]);
    }
  }
  // The C term, then the store (the last vector masked).
  __m512 c_term[ROWS][VECTORS];
  CONV_EXT_UNROLL for (int r = 0; r < ROWS; ++r) {
    CONV_EXT_UNROLL for (int v = 0; v < VECTORS; ++v) {
      const __mmask16 lanes = v == VECTORS - 1 ? last : __mmask16(0xFFFF);
      c_term[r][v] = accumulate ? _mm512_maskz_loadu_ps(lanes, c + r * ldc + 16 * v)
                     : row_bias ? _mm512_set1_ps(row_bias[r])
                                : _mm512_setzero_ps();
    }
  }
  CONV_EXT_UNROLL for (int r = 0; r < ROWS; ++r) {
    CONV_EXT_UNROLL for (int v = 0; v < VECTORS; ++v) {
      const __mmask16 lanes = v == VECTORS - 1 ? last : __mmask16(0xFFFF);
      _mm512_mask_storeu_ps(c + r * ldc + 16 * v, lanes, _mm512_add_ps(sum[r][v], c_term[r][v]));
    }
  }
}

// One column panel (up to 32 columns) of C over all its rows: blocks of 8 rows, then 4, 2, 1.
template <int VECTORS>
CONV_EXT_AVX512 void panel(int64_t m, int64_t depth, StridedMatrix<const float> a, const float* b, int64_t ldb,
                           float* c, int64_t ldc, __mmask16 last, bool accumulate, const float* row_bias) {
  auto rows = [&](auto kernel, int64_t i, int64_t count) {
    kernel(depth, a.data + i * a.row_stride, a.row_stride, a.col_stride, b, ldb, c + i * ldc, ldc, last,
           accumulate, row_bias ? row_bias + i : nullptr);
    return i + count;
  };
  int64_t i = 0;
  while (i + kRows <= m) i = rows(micro_kernel<kRows, VECTORS>, i, kRows);
  if (m - i >= 4) i = rows(micro_kernel<4, VECTORS>, i, 4);
  if (m - i >= 2) i = rows(micro_kernel<2, VECTORS>, i, 2);
  if (m - i >= 1) rows(micro_kernel<1, VECTORS>, i, 1);
}

}  // namespace

void gemm_avx512(int64_t m, int64_t n, int64_t k, StridedMatrix<const float> a, StridedMatrix<const float> b,
                 float* c, int64_t ldc, bool accumulate, const float* row_bias) {
  // B with strided rows is packed, a block of kDepth rows at a time, into this thread's buffer.
  thread_local std::vector<float> packed;
  const int64_t panels = (n + kCols - 1) / kCols;
  for (int64_t p0 = 0; p0 == 0 || p0 < k; p0 += kDepth) {  // one pass even when k == 0: C = 0 (+ bias)
    const int64_t depth = std::min(kDepth, k - p0);
    // After the first block of the sum, C holds a partial sum to add to.
    const bool add_to_c = accumulate || p0 > 0;
    const float* bias = add_to_c ? nullptr : row_bias;
    const float* b_block = b.data + p0 * b.row_stride;
    int64_t ldb = b.row_stride;
    if (b.col_stride != 1) {
      // Row by row of the packed block: the writes are contiguous and the n source lines stay in L1 while
      // their 16 floats are used by 16 consecutive rows.
      packed.resize(static_cast<size_t>(depth * n));
      for (int64_t p = 0; p < depth; ++p) {
        const float* source = b_block + p * b.row_stride;
        for (int64_t j = 0; j < n; ++j) packed[p * n + j] = source[j * b.col_stride];
      }
      b_block = packed.data();
      ldb = n;
    }
    const StridedMatrix<const float> a_block{a.data + p0 * a.col_stride, a.row_stride, a.col_stride};
    // Panels in parallel when there is enough work per thread (inline inside a parallel region).
    const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 20) / std::max<int64_t>(m * depth * kCols, 1));
    at::parallel_for(0, panels, grain, [&](int64_t begin, int64_t end) {
      for (int64_t j = begin; j < end; ++j) {
        const int64_t j0 = j * kCols, cols = std::min(kCols, n - j0);
        if (cols > 16) {
          panel<2>(m, depth, a_block, b_block + j0, ldb, c + j0, ldc, first_lanes(cols - 16), add_to_c, bias);
        } else {
          panel<1>(m, depth, a_block, b_block + j0, ldb, c + j0, ldc, first_lanes(cols), add_to_c, bias);
        }
      }
    });
  }
}

}  // namespace conv_ext::cpu

#else  // not x86-64 with GCC/Clang: gemm.cpp never calls the kernel (avx512_gemm_available() is false)

namespace conv_ext::cpu {

void gemm_avx512(int64_t, int64_t, int64_t, StridedMatrix<const float>, StridedMatrix<const float>, float*, int64_t,
                 bool, const float*) {
  TORCH_CHECK(false, "conv_ext: the AVX-512 GEMM is not built for this CPU");
}

}  // namespace conv_ext::cpu

#endif
