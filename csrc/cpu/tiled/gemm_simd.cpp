// C = A . B in float32 with AVX-512: the GEMM of the CPU tiles (see gemm.h for the contract), on the micro-kernel of
// simd_micro_kernel.inc; the kernel itself is gemm_simd.inc. Built for AVX-512 only: on AVX2, where a register block
// holds a quarter of the sums, ATen's GEMM (MKL) ran the tiled path faster on every suite shape (e.g. vgg-like's dw
// 17.0 against 23.8 ms on a Zen 3), and gemm.cpp calls it instead.
#include "cpu/tiled/gemm.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#define CONV_EXT_SIMD_BODY "cpu/tiled/gemm_simd.inc"
#define CONV_EXT_SIMD_AVX512_ONLY
#include "cpu/simd/simd_for_each_isa.h"

namespace conv_ext::cpu {

void gemm_simd(int64_t m, int64_t n, int64_t k, StridedMatrix<const float> a, StridedMatrix<const float> b,
               float* c, int64_t ldc, bool accumulate, const float* row_bias) {
  CONV_EXT_SIMD_KERNEL(gemm)(m, n, k, a, b, c, ldc, accumulate, row_bias);
}

}  // namespace conv_ext::cpu
