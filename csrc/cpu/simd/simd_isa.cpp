// The instruction set of our SIMD kernels: the CPU's, and its cap (none turns the kernels off).
#include "cpu/simd/simd_isa.h"

#include <algorithm>
#include <atomic>

namespace conv_ext::cpu {

namespace {

std::atomic<int> g_simd_isa_limit{static_cast<int>(SimdIsa::avx512)};

}  // namespace

SimdIsa cpu_simd_isa() {
#if CONV_EXT_X86_SIMD
  static const SimdIsa isa = __builtin_cpu_supports("avx512f")                                      ? SimdIsa::avx512
                             : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? SimdIsa::avx2
                                                                                                : SimdIsa::none;
  return isa;
#else
  return SimdIsa::none;
#endif
}

bool intel_cpu() {
#if CONV_EXT_X86_SIMD
  static const bool intel = __builtin_cpu_is("intel");
  return intel;
#else
  return false;
#endif
}

SimdIsa simd_isa_limit() { return static_cast<SimdIsa>(g_simd_isa_limit.load()); }
void set_simd_isa_limit(SimdIsa limit) { g_simd_isa_limit.store(static_cast<int>(limit)); }
SimdIsa simd_isa() { return std::min(cpu_simd_isa(), simd_isa_limit()); }

const char* simd_isa_name(SimdIsa isa) {
  switch (isa) {
    case SimdIsa::avx512: return "avx512";
    case SimdIsa::avx2: return "avx2";
    case SimdIsa::none: return "none";
  }
  return "?";
}

}  // namespace conv_ext::cpu
