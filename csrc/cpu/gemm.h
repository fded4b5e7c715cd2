// C = A . B on strided matrices, for the tiles of the CPU path (gemm.cpp). float32 runs our own kernel (gemm_simd.cpp)
// where the CPU has AVX-512; every other case runs ATen's GEMM (MKL/OpenBLAS) on views. Also the instruction set that
// all our float32 SIMD kernels run on (simd_isa).
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

// x86-64 with GCC or Clang: the SIMD kernels are built (their target attributes and intrinsics).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CONV_EXT_X86_SIMD 1
#else
#define CONV_EXT_X86_SIMD 0
#endif

// The instruction set of our float32 SIMD kernels (the GEMM, the implicit GEMM, the padded and exact-taps kernels):
// AVX-512 where the CPU has AVX-512F, else AVX2 with FMA, else none (ATen's GEMM and the scalar loops run
// everything). simd_isa() is the CPU's, capped by set_simd_isa_limit (tests and the benchmark run AVX2 on an
// AVX-512 CPU that way); simd_gemm_enabled() is whether float32 GEMMs use the kernels at all (default: when
// simd_isa() is not none). The switch (settings.aten_gemm() in Python) runs ATen's GEMM on the same machine.
enum class SimdIsa { none = 0, avx2 = 1, avx512 = 2 };
SimdIsa cpu_simd_isa();
SimdIsa simd_isa();
SimdIsa simd_isa_limit();
void set_simd_isa_limit(SimdIsa limit);
const char* simd_isa_name(SimdIsa isa);
bool simd_gemm_enabled();
void set_simd_gemm_enabled(bool enabled);

// The AVX-512 float32 kernel behind gemm<float, float> (gemm_simd.cpp), where simd_gemm_enabled() and simd_isa() is
// AVX-512 (on AVX2, gemm<float, float> runs ATen's GEMM: see gemm_simd.cpp).
void gemm_simd(int64_t m, int64_t n, int64_t k, StridedMatrix<const float> a, StridedMatrix<const float> b,
               float* c, int64_t ldc, bool accumulate, const float* row_bias);

// Picks the kernel of simd_isa() among a kernel's AVX-512 and AVX2 builds (simd_for_each_isa.h).
template <typename Kernel>
Kernel for_simd_isa(Kernel avx512, Kernel avx2) {
  return simd_isa() == SimdIsa::avx512 ? avx512 : avx2;
}

}  // namespace conv_ext::cpu
