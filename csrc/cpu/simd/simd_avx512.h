// The vector layer of our CPU kernels on AVX-512: a vector is one __m512 of 16 floats, a lane mask one __mmask16.
// simd_avx2.h has the same names on AVX2 (two __m256 per vector). Include only from x86-64 GCC/Clang translation
// units; the kernels include it through simd_for_each_isa.h.
#pragma once

#include <immintrin.h>

#include <cstdint>

#define CONV_EXT_AVX512 __attribute__((target("avx512f,fma")))
// For the helpers that take a register block by reference: inlined, it stays in registers.
#define CONV_EXT_AVX512_INLINE __attribute__((target("avx512f,fma"), always_inline)) inline

namespace conv_ext::cpu::avx512 {

using Vec = __m512;
using Mask = __mmask16;

// Register blocks (32 vector registers): up to 8 rows x 2 vectors of sums (kRows x kVectors), or 16 rows x 1
// vector (kWideRows) where one vector holds all the lanes.
constexpr int kVectorRegisters = 32;
constexpr int kRows = 8, kVectors = 2, kWideRows = 16;

// The lanes [0, count) of a vector (count clamped to [0, 16]).
CONV_EXT_AVX512 inline Mask first_lanes(int64_t count) {
  return count >= 16 ? Mask(0xFFFF) : count <= 0 ? Mask(0) : Mask((1u << count) - 1);
}
// Whether every lane of the vector is in the mask.
CONV_EXT_AVX512_INLINE bool all_lanes(const Mask& mask) { return mask == Mask(0xFFFF); }
// Lane l where bit l of `bits` is set.
CONV_EXT_AVX512_INLINE Mask lanes_of_bits(uint32_t bits) { return Mask(bits); }

CONV_EXT_AVX512_INLINE Vec zero() { return _mm512_setzero_ps(); }
CONV_EXT_AVX512_INLINE Vec broadcast(float x) { return _mm512_set1_ps(x); }
CONV_EXT_AVX512_INLINE Vec load(const float* p) { return _mm512_loadu_ps(p); }
// The lanes in `mask` from p, zero elsewhere; lanes outside the mask are neither read nor faulted on.
CONV_EXT_AVX512_INLINE Vec load(const Mask& mask, const float* p) { return _mm512_maskz_loadu_ps(mask, p); }
CONV_EXT_AVX512_INLINE void store(float* p, const Mask& mask, Vec v) { _mm512_mask_storeu_ps(p, mask, v); }
// A store past the caches (non-temporal) of a whole vector at a 64-byte boundary; stream_fence() orders a thread's
// streamed stores before its later stores.
CONV_EXT_AVX512_INLINE void stream(float* p, Vec v) { _mm512_stream_ps(p, v); }
CONV_EXT_AVX512_INLINE void stream_fence() { _mm_sfence(); }
CONV_EXT_AVX512_INLINE Vec fmadd(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
CONV_EXT_AVX512_INLINE Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }

// A vector's parts, one register each (simd_avx2.h's vector has two): here the vector itself.
constexpr int kParts = 1, kPartLanes = 16;
using Part = Vec;
using PartMask = Mask;
CONV_EXT_AVX512_INLINE PartMask part_mask(const Mask& mask, int) { return mask; }
CONV_EXT_AVX512_INLINE bool no_lanes(PartMask mask) { return mask == 0; }
CONV_EXT_AVX512_INLINE Part zero_part() { return zero(); }
CONV_EXT_AVX512_INLINE Part load_part(const float* p) { return load(p); }
CONV_EXT_AVX512_INLINE Part load_part(PartMask mask, const float* p) { return load(mask, p); }
CONV_EXT_AVX512_INLINE void store_part(float* p, PartMask mask, Part v) { store(p, mask, v); }
CONV_EXT_AVX512_INLINE void stream_part(float* p, Part v) { stream(p, v); }

// Lanes 0, 2, ..., 30 of the 32 in (low, high): a run of stride 2.
CONV_EXT_AVX512_INLINE Vec even_lanes(Vec low, Vec high) {
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  return _mm512_permutex2var_ps(low, even, high);
}

// The lanes of even and odd alternated: first = e0 o0 e1 o1 ... e7 o7, second = e8 o8 ... e15 o15.
CONV_EXT_AVX512_INLINE void interleave(Vec even, Vec odd, Vec& first, Vec& second) {
  const __m512i low = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i high = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
  first = _mm512_permutex2var_ps(even, low, odd);
  second = _mm512_permutex2var_ps(even, high, odd);
}

// The sum of a vector's 16 lanes, as a tree of in-register adds (the same order every time). The shuffles are
// the masked forms with every lane set: GCC 12's plain forms (and _mm512_reduce_add_ps) start from an
// "undefined" vector that -Wuninitialized reports.
CONV_EXT_AVX512 inline float lane_sum(Vec v) {
  const __mmask16 all = 0xFFFF;
  v = _mm512_add_ps(v, _mm512_mask_shuffle_f32x4(v, all, v, v, _MM_SHUFFLE(1, 0, 3, 2)));  // the other half
  v = _mm512_add_ps(v, _mm512_mask_shuffle_f32x4(v, all, v, v, _MM_SHUFFLE(2, 3, 0, 1)));  // the other quarter
  v = _mm512_add_ps(v, _mm512_mask_permute_ps(v, all, v, _MM_SHUFFLE(1, 0, 3, 2)));        // the other pair
  v = _mm512_add_ps(v, _mm512_mask_permute_ps(v, all, v, _MM_SHUFFLE(2, 3, 0, 1)));        // the other lane
  return _mm512_cvtss_f32(v);
}

// The 16 x 16 block in r, transposed in registers: r[i][j] becomes r[j][i]. The shuffles are the masked forms with
// every lane set, as in lane_sum.
CONV_EXT_AVX512 inline void transpose_16x16(Vec (&r)[16]) {
  const __mmask16 all = 0xFFFF;
  const __mmask8 all_pairs = 0xFF;
  Vec t[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; i += 2) {  // pairs of rows, lanes interleaved
    t[i] = _mm512_mask_unpacklo_ps(r[i], all, r[i], r[i + 1]);
    t[i + 1] = _mm512_mask_unpackhi_ps(r[i], all, r[i], r[i + 1]);
  }
#pragma GCC unroll 16
  for (int i = 0; i < 16; i += 4) {  // pairs of pairs, 64-bit lanes interleaved
#pragma GCC unroll 2
    for (int k = 0; k < 2; ++k) {
      const __m512d a = _mm512_castps_pd(t[i + k]), b = _mm512_castps_pd(t[i + k + 2]);
      r[i + 2 * k] = _mm512_castpd_ps(_mm512_mask_unpacklo_pd(a, all_pairs, a, b));
      r[i + 2 * k + 1] = _mm512_castpd_ps(_mm512_mask_unpackhi_pd(a, all_pairs, a, b));
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < 16; i += 8) {  // 128-bit lanes: the even ones, then the odd ones
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      t[i + k] = _mm512_mask_shuffle_f32x4(r[i + k], all, r[i + k], r[i + k + 4], 0x88);
      t[i + k + 4] = _mm512_mask_shuffle_f32x4(r[i + k], all, r[i + k], r[i + k + 4], 0xDD);
    }
  }
#pragma GCC unroll 8
  for (int k = 0; k < 8; ++k) {
    r[k] = _mm512_mask_shuffle_f32x4(t[k], all, t[k], t[k + 8], 0x88);
    r[k + 8] = _mm512_mask_shuffle_f32x4(t[k], all, t[k], t[k + 8], 0xDD);
  }
}

// The parts' square (kPartLanes x kPartLanes) transposed in registers.
CONV_EXT_AVX512_INLINE void transpose_parts(Part (&r)[kPartLanes]) { transpose_16x16(r); }

}  // namespace conv_ext::cpu::avx512
