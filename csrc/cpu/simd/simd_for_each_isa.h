// Compiles the SIMD part of a kernel once per instruction set, and names the build that runs: the one mechanism
// for every SIMD kernel, on every CPU.
//
// The includer defines CONV_EXT_SIMD_BODY (the path of that part, a .inc file, from csrc/) and includes this header
// at namespace scope, after the headers that declare what the body uses (the body includes nothing itself). On
// x86-64 with GCC or Clang, the header includes the body in namespace conv_ext::cpu::avx512 and again in
// conv_ext::cpu::avx2, each time after the shared micro-kernel and transposes, with that namespace's vector layer
// (simd_avx512.h, simd_avx2.h) and CONV_EXT_SIMD / CONV_EXT_SIMD_INLINE set to its target attributes. Every
// function of a body carries them, so no AVX code leaks into functions that run on any CPU.
//
// CONV_EXT_SIMD_KERNEL(name) is the build of kernel `name` (a function of the body) that runs: the one of
// simd_isa(); where no body is built (another CPU or compiler), a callable that throws, which the kernel table
// never reaches (simd_isa() is none there, and every SIMD kernel requires it). Not include-guarded: once per
// kernel file.
#include <c10/util/Exception.h>

#include "cpu/simd/simd_isa.h"
#include "cpu/simd/strided_matrix.h"

#if CONV_EXT_X86_SIMD
#include "cpu/simd/simd_avx2.h"
#include "cpu/simd/simd_avx512.h"

// The loops over the register block must unroll completely, or GCC keeps the sums in memory.
#define CONV_EXT_UNROLL _Pragma("GCC unroll 16")

#define CONV_EXT_SIMD CONV_EXT_AVX512
#define CONV_EXT_SIMD_INLINE CONV_EXT_AVX512_INLINE
namespace conv_ext::cpu::avx512 {
#include "cpu/simd/simd_micro_kernel.inc"
#include "cpu/simd/simd_transpose.inc"
#include CONV_EXT_SIMD_BODY
}  // namespace conv_ext::cpu::avx512
#undef CONV_EXT_SIMD
#undef CONV_EXT_SIMD_INLINE

#define CONV_EXT_SIMD CONV_EXT_AVX2
#define CONV_EXT_SIMD_INLINE CONV_EXT_AVX2_INLINE
namespace conv_ext::cpu::avx2 {
#include "cpu/simd/simd_micro_kernel.inc"
#include "cpu/simd/simd_transpose.inc"
#include CONV_EXT_SIMD_BODY
}  // namespace conv_ext::cpu::avx2
#undef CONV_EXT_SIMD
#undef CONV_EXT_SIMD_INLINE
#define CONV_EXT_SIMD_KERNEL(name) ::conv_ext::cpu::for_simd_isa(avx512::name, avx2::name)

#undef CONV_EXT_UNROLL

#else  // not x86-64 with GCC/Clang: no body is built

#ifndef CONV_EXT_SIMD_NOT_BUILT_DEFINED
#define CONV_EXT_SIMD_NOT_BUILT_DEFINED
namespace conv_ext::cpu {
// Stands for a SIMD kernel that is not built for this CPU: calling it throws.
struct SimdKernelNotBuilt {
  const char* name;
  template <typename... Args>
  void operator()(const Args&...) const {
    TORCH_CHECK(false, "conv_ext: the SIMD kernel ", name, " is not built for this CPU");
  }
};
}  // namespace conv_ext::cpu
#endif
#define CONV_EXT_SIMD_KERNEL(name) ::conv_ext::cpu::SimdKernelNotBuilt{#name}

#endif

#undef CONV_EXT_SIMD_BODY
