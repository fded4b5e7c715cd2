// Compiles the SIMD part of a kernel once per instruction set: the includer defines CONV_EXT_SIMD_BODY (the file
// name of that part, a .inc file) and includes this header, which includes the body in namespace
// conv_ext::cpu::avx512 and again in conv_ext::cpu::avx2, each time after the shared micro-kernel and transposes,
// with that namespace's vector layer (simd_avx512.h, simd_avx2.h) and CONV_EXT_SIMD / CONV_EXT_SIMD_INLINE set to
// its target attributes. Every function of a body carries them, so no AVX code leaks into functions that run on
// any CPU. The caller picks the namespace at run time (simd_isa() in gemm.h). With CONV_EXT_SIMD_AVX512_ONLY
// defined, only the AVX-512 build (the dense GEMM: on AVX2 ATen's measured faster). Not include-guarded: once per
// kernel file, at namespace scope, after the body's own includes.
#include "simd_avx2.h"
#include "simd_avx512.h"

// The loops over the register block must unroll completely, or GCC keeps the sums in memory.
#define CONV_EXT_UNROLL _Pragma("GCC unroll 16")

#define CONV_EXT_SIMD CONV_EXT_AVX512
#define CONV_EXT_SIMD_INLINE CONV_EXT_AVX512_INLINE
namespace conv_ext::cpu::avx512 {
#include "simd_micro_kernel.inc"
#include "simd_transpose.inc"
#include CONV_EXT_SIMD_BODY
}  // namespace conv_ext::cpu::avx512
#undef CONV_EXT_SIMD
#undef CONV_EXT_SIMD_INLINE

#ifndef CONV_EXT_SIMD_AVX512_ONLY
#define CONV_EXT_SIMD CONV_EXT_AVX2
#define CONV_EXT_SIMD_INLINE CONV_EXT_AVX2_INLINE
namespace conv_ext::cpu::avx2 {
#include "simd_micro_kernel.inc"
#include "simd_transpose.inc"
#include CONV_EXT_SIMD_BODY
}  // namespace conv_ext::cpu::avx2
#undef CONV_EXT_SIMD
#undef CONV_EXT_SIMD_INLINE
#endif

#undef CONV_EXT_UNROLL
#undef CONV_EXT_SIMD_BODY
#undef CONV_EXT_SIMD_AVX512_ONLY
