// The instruction set that all our float32 SIMD kernels run on, and the switch that turns them all off.
#pragma once

#include <cstdint>

namespace conv_ext::cpu {

// x86-64 with GCC or Clang: the SIMD kernels are built (their target attributes and intrinsics). A build may
// define it 0 to compile the portable build (scalar loops and ATen's GEMM only) on x86-64 too.
#ifndef CONV_EXT_X86_SIMD
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CONV_EXT_X86_SIMD 1
#else
#define CONV_EXT_X86_SIMD 0
#endif
#endif

// The instruction set of our float32 SIMD kernels (the tiled path's GEMM, the implicit GEMM, the padded,
// exact-taps and depthwise kernels): AVX-512 where the CPU has AVX-512F, else AVX2 with FMA, else none (ATen's
// GEMM and the scalar loops run everything). simd_isa() is the CPU's, capped by set_simd_isa_limit (tests and the
// benchmark run AVX2 on an AVX-512 CPU that way).
enum class SimdIsa { none = 0, avx2 = 1, avx512 = 2 };
SimdIsa cpu_simd_isa();
SimdIsa simd_isa();
SimdIsa simd_isa_limit();
void set_simd_isa_limit(SimdIsa limit);
const char* simd_isa_name(SimdIsa isa);
// Whether float32 convolutions run our SIMD kernels at all: not where simd_isa() is none (a CPU with neither
// instruction set, or the cap set to none: settings.simd_isa("none") in Python), where every float32 pass runs the
// tiled path on ATen's GEMM, or the scalar depthwise loops.
inline bool simd_kernels_enabled() { return simd_isa() != SimdIsa::none; }

// Whether the CPU is Intel's (x86-64 with GCC or Clang; false elsewhere). MKL, the GEMM of torch's x86 wheels that
// the tiled path calls, runs its best code there: where that GEMM or a kernel of ours wins can depend on it
// (kernel_table.cpp).
bool intel_cpu();
// Picks the kernel of simd_isa() among a kernel's AVX-512 and AVX2 builds (simd_for_each_isa.h).
template <typename Kernel>
Kernel for_simd_isa(Kernel avx512, Kernel avx2) {
  return simd_isa() == SimdIsa::avx512 ? avx512 : avx2;
}

}  // namespace conv_ext::cpu
