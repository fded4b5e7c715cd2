// The vector layer of our CPU kernels on AVX2 (with FMA): the names of simd_avx512.h, for CPUs without AVX-512.
// A vector is still 16 floats, as two __m256 (lo: lanes 0-7, hi: 8-15), so that every kernel keeps its layout
// (16 output positions or 16 output channels per vector); a lane mask is two vectors of all-ones or all-zeros
// 32-bit elements. With 16 vector registers, a register block holds a quarter of AVX-512's sums. Include only
// from x86-64 GCC/Clang translation units; the kernels include it through simd_for_each_isa.h.
#pragma once

#include <immintrin.h>

#include <cstdint>

#define CONV_EXT_AVX2 __attribute__((target("avx2,fma")))
#define CONV_EXT_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) inline

namespace conv_ext::cpu::avx2 {

struct Vec {
  __m256 lo, hi;
};
struct Mask {
  __m256i lo, hi;
};

// Register blocks (16 vector registers, two per Vec): up to 6 rows x 1 vector of sums (12 registers), leaving
// room for a row of B and a broadcast.
constexpr int kVectorRegisters = 16;
constexpr int kRows = 6, kVectors = 1, kWideRows = 6;

CONV_EXT_AVX2_INLINE Mask first_lanes(int64_t count) {
  const int32_t n = static_cast<int32_t>(count < 0 ? 0 : count > 16 ? 16 : count);
  const __m256i limit = _mm256_set1_epi32(n);
  return {_mm256_cmpgt_epi32(limit, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)),
          _mm256_cmpgt_epi32(limit, _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15))};
}
CONV_EXT_AVX2_INLINE bool all_lanes(const Mask& mask) {
  return (_mm256_movemask_ps(_mm256_castsi256_ps(mask.lo)) & _mm256_movemask_ps(_mm256_castsi256_ps(mask.hi))) == 0xFF;
}
CONV_EXT_AVX2_INLINE Mask lanes_of_bits(uint32_t bits) {
  const __m256i all = _mm256_set1_epi32(static_cast<int32_t>(bits));
  const __m256i low = _mm256_setr_epi32(1 << 0, 1 << 1, 1 << 2, 1 << 3, 1 << 4, 1 << 5, 1 << 6, 1 << 7);
  const __m256i high = _mm256_setr_epi32(1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12, 1 << 13, 1 << 14, 1 << 15);
  return {_mm256_cmpeq_epi32(_mm256_and_si256(all, low), low), _mm256_cmpeq_epi32(_mm256_and_si256(all, high), high)};
}

CONV_EXT_AVX2_INLINE Vec zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
CONV_EXT_AVX2_INLINE Vec broadcast(float x) {
  const __m256 v = _mm256_set1_ps(x);
  return {v, v};
}
CONV_EXT_AVX2_INLINE Vec load(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
// vmaskmovps: lanes outside the mask read as zero and do not fault.
CONV_EXT_AVX2_INLINE Vec load(const Mask& mask, const float* p) {
  return {_mm256_maskload_ps(p, mask.lo), _mm256_maskload_ps(p + 8, mask.hi)};
}
// A full half as a plain store: AMD's masked stores are slow.
CONV_EXT_AVX2_INLINE void store_half(float* p, __m256i mask, __m256 v) {
  if (_mm256_movemask_ps(_mm256_castsi256_ps(mask)) == 0xFF) {
    _mm256_storeu_ps(p, v);
  } else {
    _mm256_maskstore_ps(p, mask, v);
  }
}
CONV_EXT_AVX2_INLINE void store(float* p, const Mask& mask, Vec v) {
  store_half(p, mask.lo, v.lo);
  store_half(p + 8, mask.hi, v.hi);
}
// A store past the caches (non-temporal) of a whole vector at a 64-byte boundary; stream_fence() orders a thread's
// streamed stores before its later stores.
CONV_EXT_AVX2_INLINE void stream(float* p, Vec v) {
  _mm256_stream_ps(p, v.lo);
  _mm256_stream_ps(p + 8, v.hi);
}
CONV_EXT_AVX2_INLINE void stream_fence() { _mm_sfence(); }
CONV_EXT_AVX2_INLINE Vec fmadd(Vec a, Vec b, Vec c) {
  return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
CONV_EXT_AVX2_INLINE Vec add(Vec a, Vec b) { return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }

// A vector's parts, one register each: its two halves of 8 lanes (lo, hi), for a register block that counts
// registers (the depthwise sliding block, nhwc_depthwise_simd.inc). simd_avx512.h's vector is one part.
constexpr int kParts = 2, kPartLanes = 8;
using Part = __m256;
using PartMask = __m256i;
CONV_EXT_AVX2_INLINE PartMask part_mask(const Mask& mask, int k) { return k == 0 ? mask.lo : mask.hi; }
CONV_EXT_AVX2_INLINE bool no_lanes(PartMask mask) { return _mm256_testz_si256(mask, mask) != 0; }
CONV_EXT_AVX2_INLINE Part zero_part() { return _mm256_setzero_ps(); }
CONV_EXT_AVX2_INLINE Part load_part(const float* p) { return _mm256_loadu_ps(p); }
CONV_EXT_AVX2_INLINE Part load_part(PartMask mask, const float* p) { return _mm256_maskload_ps(p, mask); }
CONV_EXT_AVX2_INLINE void store_part(float* p, PartMask mask, Part v) { store_half(p, mask, v); }
CONV_EXT_AVX2_INLINE void stream_part(float* p, Part v) { _mm256_stream_ps(p, v); }
CONV_EXT_AVX2_INLINE bool all_lanes(PartMask mask) { return _mm256_movemask_ps(_mm256_castsi256_ps(mask)) == 0xFF; }
CONV_EXT_AVX2_INLINE Part fmadd(Part a, Part b, Part c) { return _mm256_fmadd_ps(a, b, c); }

// Lanes 0, 2, ..., 14 of the 16 in (a, b), in order.
CONV_EXT_AVX2_INLINE __m256 even_lanes_8(__m256 a, __m256 b) {
  // Per 128-bit half: a0 a2 b0 b2 | a4 a6 b4 b6; then the 64-bit pairs in the order 0, 2, 1, 3.
  const __m256 mixed = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(mixed), _MM_SHUFFLE(3, 1, 2, 0)));
}
CONV_EXT_AVX2_INLINE Vec even_lanes(Vec low, Vec high) {
  return {even_lanes_8(low.lo, low.hi), even_lanes_8(high.lo, high.hi)};
}

// The lanes of even and odd alternated: first = e0 o0 e1 o1 ... e7 o7, second = e8 o8 ... e15 o15.
CONV_EXT_AVX2_INLINE void interleave(Vec even, Vec odd, Vec& first, Vec& second) {
  // Per 128-bit half: e0 o0 e1 o1 | e4 o4 e5 o5 and e2 o2 e3 o3 | e6 o6 e7 o7; then the halves in order.
  const __m256 low_a = _mm256_unpacklo_ps(even.lo, odd.lo), high_a = _mm256_unpackhi_ps(even.lo, odd.lo);
  const __m256 low_b = _mm256_unpacklo_ps(even.hi, odd.hi), high_b = _mm256_unpackhi_ps(even.hi, odd.hi);
  first = {_mm256_permute2f128_ps(low_a, high_a, 0x20), _mm256_permute2f128_ps(low_a, high_a, 0x31)};
  second = {_mm256_permute2f128_ps(low_b, high_b, 0x20), _mm256_permute2f128_ps(low_b, high_b, 0x31)};
}

// The sum of the 16 lanes, as a tree of in-register adds (the same order every time).
CONV_EXT_AVX2 inline float lane_sum(Vec v) {
  const __m256 eight = _mm256_add_ps(v.lo, v.hi);
  __m128 four = _mm_add_ps(_mm256_castps256_ps128(eight), _mm256_extractf128_ps(eight, 1));
  four = _mm_add_ps(four, _mm_movehl_ps(four, four));
  four = _mm_add_ss(four, _mm_shuffle_ps(four, four, _MM_SHUFFLE(1, 1, 1, 1)));
  return _mm_cvtss_f32(four);
}

// The 8 x 8 block in r, transposed: r[i][j] becomes r[j][i].
CONV_EXT_AVX2_INLINE void transpose_8x8(__m256 (&r)[8]) {
  __m256 t[8], u[8];
#pragma GCC unroll 4
  for (int i = 0; i < 8; i += 2) {  // pairs of rows, lanes interleaved
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
#pragma GCC unroll 2
  for (int i = 0; i < 8; i += 4) {  // pairs of pairs, 64-bit lanes
#pragma GCC unroll 2
    for (int k = 0; k < 2; ++k) {
      u[i + 2 * k] = _mm256_shuffle_ps(t[i + k], t[i + k + 2], _MM_SHUFFLE(1, 0, 1, 0));
      u[i + 2 * k + 1] = _mm256_shuffle_ps(t[i + k], t[i + k + 2], _MM_SHUFFLE(3, 2, 3, 2));
    }
  }
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {  // 128-bit halves
    r[k] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x20);
    r[k + 4] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x31);
  }
}

// The 16 x 16 block in r, transposed: four 8 x 8 blocks, the off-diagonal two swapped.
CONV_EXT_AVX2 inline void transpose_16x16(Vec (&r)[16]) {
  __m256 top_left[8], top_right[8], bottom_left[8], bottom_right[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    top_left[i] = r[i].lo;
    top_right[i] = r[i].hi;
    bottom_left[i] = r[i + 8].lo;
    bottom_right[i] = r[i + 8].hi;
  }
  transpose_8x8(top_left);
  transpose_8x8(top_right);
  transpose_8x8(bottom_left);
  transpose_8x8(bottom_right);
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    r[i] = {top_left[i], bottom_left[i]};
    r[i + 8] = {top_right[i], bottom_right[i]};
  }
}

// The parts' square (kPartLanes x kPartLanes) transposed in registers.
CONV_EXT_AVX2_INLINE void transpose_parts(Part (&r)[kPartLanes]) { transpose_8x8(r); }

}  // namespace conv_ext::cpu::avx2
