// Matrices transposed in 16 x 16 register blocks with AVX-512: the kernels that keep the output channels in the
// vector lanes (padded_conv2d_avx512.cpp, exact_taps_conv2d_avx512.cpp) compute out^T or dw^T and transpose it into
// the NCHW output. Include only from x86-64 GCC/Clang translation units, after avx512_micro_kernel.h.
#pragma once

#include <algorithm>
#include <cstdint>

#include "avx512_micro_kernel.h"

namespace conv_ext::cpu::avx512 {

// The 16 x 16 block in r, transposed in registers: r[i][j] becomes r[j][i]. The shuffles are the masked forms with
// every lane set: GCC 12's plain forms start from an "undefined" vector that -Wmaybe-uninitialized reports.
CONV_EXT_AVX512 inline void transpose_16x16(__m512 (&r)[16]) {
  const __mmask16 all = 0xFFFF;
  const __mmask8 all_pairs = 0xFF;
  __m512 t[16];
  CONV_EXT_UNROLL for (int i = 0; i < 16; i += 2) {  // pairs of rows, lanes interleaved
    t[i] = _mm512_mask_unpacklo_ps(r[i], all, r[i], r[i + 1]);
    t[i + 1] = _mm512_mask_unpackhi_ps(r[i], all, r[i], r[i + 1]);
  }
  CONV_EXT_UNROLL for (int i = 0; i < 16; i += 4) {  // pairs of pairs, 64-bit lanes interleaved
    CONV_EXT_UNROLL for (int k = 0; k < 2; ++k) {
      const __m512d a = _mm512_castps_pd(t[i + k]), b = _mm512_castps_pd(t[i + k + 2]);
      r[i + 2 * k] = _mm512_castpd_ps(_mm512_mask_unpacklo_pd(a, all_pairs, a, b));
      r[i + 2 * k + 1] = _mm512_castpd_ps(_mm512_mask_unpackhi_pd(a, all_pairs, a, b));
    }
  }
  CONV_EXT_UNROLL for (int i = 0; i < 16; i += 8) {  // 128-bit lanes: the even ones, then the odd ones
    CONV_EXT_UNROLL for (int k = 0; k < 4; ++k) {
      t[i + k] = _mm512_mask_shuffle_f32x4(r[i + k], all, r[i + k], r[i + k + 4], 0x88);
      t[i + k + 4] = _mm512_mask_shuffle_f32x4(r[i + k], all, r[i + k], r[i + k + 4], 0xDD);
    }
  }
  CONV_EXT_UNROLL for (int k = 0; k < 8; ++k) {
    r[k] = _mm512_mask_shuffle_f32x4(t[k], all, t[k], t[k + 8], 0x88);
    r[k + 8] = _mm512_mask_shuffle_f32x4(t[k], all, t[k], t[k + 8], 0xDD);
  }
}

// to[q * to_stride + o] = from[o * from_stride + q] (+ to_row_bias[q]) for o < rows, q < cols: a matrix
// transposed in blocks of 16 x 16.
CONV_EXT_AVX512 inline void transpose_plane(const float* from, int64_t from_stride, float* to, int64_t to_stride,
                                     int64_t rows, int64_t cols, const float* to_row_bias) {
  for (int64_t o0 = 0; o0 < rows; o0 += 16) {
    const int64_t block_rows = std::min<int64_t>(16, rows - o0);
    for (int64_t q0 = 0; q0 < cols; q0 += 16) {
      const int64_t block_cols = std::min<int64_t>(16, cols - q0);
      const __mmask16 row_lanes = first_lanes(block_cols), col_lanes = first_lanes(block_rows);
      __m512 r[16];
      CONV_EXT_UNROLL for (int i = 0; i < 16; ++i) {
        r[i] = i < block_rows ? _mm512_maskz_loadu_ps(row_lanes, from + (o0 + i) * from_stride + q0)
                              : _mm512_setzero_ps();
      }
      transpose_16x16(r);
      CONV_EXT_UNROLL for (int i = 0; i < 16; ++i) {
        if (i >= block_cols) continue;
        if (to_row_bias) r[i] = _mm512_add_ps(r[i], _mm512_set1_ps(to_row_bias[q0 + i]));
        _mm512_mask_storeu_ps(to + (q0 + i) * to_stride + o0, col_lanes, r[i]);
      }
    }
  }
}

}  // namespace conv_ext::cpu::avx512
