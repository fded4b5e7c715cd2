// C = A . B in float32 with AVX-512: the GEMM of the CPU tiles (see gemm.h for the contract), on the
// micro-kernel of avx512_micro_kernel.h. B is read in place when its rows are contiguous (the columns,
// grad_output) and packed first otherwise (grad_output transposed, for dw).
#include "gemm.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "avx512_micro_kernel.h"

namespace conv_ext::cpu {

namespace {

using avx512::kCols;

constexpr int64_t kDepth = 256;  // steps of the sum per pass: a 32-column panel of B (32 KiB) stays in L1

// Row p of B at data + p * ldb; lanes [0, 16) of every vector but the last, `last` lanes of the last.
struct DenseRows {
  const float* data;
  int64_t ldb;
  __mmask16 last;

  // block += A[0:ROWS, 0:depth] . B[0:depth, lanes].
  template <int ROWS, int VECTORS>
  CONV_EXT_AVX512_INLINE void sum_into(int64_t depth, const float* a, int64_t a_rs, int64_t a_cs,
                                       __m512 (&block)[ROWS][VECTORS]) const {
    const float* source = data;
    for (int64_t p = 0; p < depth; ++p, a += a_cs, source += ldb) {
      __m512 row[VECTORS];
      CONV_EXT_UNROLL for (int v = 0; v < VECTORS; ++v) {
        row[v] = v == VECTORS - 1 ? _mm512_maskz_loadu_ps(last, source + 16 * v) : _mm512_loadu_ps(source + 16 * v);
      }
      avx512::fma_step<ROWS, VECTORS>(block, a, a_rs, row);
    }
  }
};

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
        const DenseRows rows{b_block + j0, ldb, avx512::first_lanes(cols > 16 ? cols - 16 : cols)};
        avx512::any_panel(m, depth, a_block, rows, avx512::CBlock{c + j0, ldc, {}}, cols, add_to_c, bias);
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
