// The per-element bodies of im2col and col2im, shared by every launcher.
//
// These functions are the math of the lowering; the CUDA kernels are grid-stride loops over them and a host
// loop can run the very same bodies, which is how the CPU tests exercise the code that the GPU runs.
// The header compiles with a plain C++ compiler too (CONV_EXT_HOST_DEVICE is then empty).
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define CONV_EXT_HOST_DEVICE __host__ __device__
#else
#define CONV_EXT_HOST_DEVICE
#endif

namespace conv_ext {

// Everything the index math needs about one chunk of the batch, in the index type of the math: int64_t
// (ConvGeometry) so that index products never overflow whatever the tensor sizes, or int32_t where every offset
// of the chunk fits (fits_int32_indexing): a GPU divides 32-bit integers several times faster than 64-bit ones,
// and the column kernels divide a handful of times per element.
template <typename index_t>
struct BasicConvGeometry {
  index_t batch;  // samples in this chunk
  index_t channels;  // input channels (all groups)
  index_t height, width;  // input plane
  index_t kernel_h, kernel_w;
  index_t stride_h, stride_w;
  index_t pad_h, pad_w;
  index_t dilation_h, dilation_w;
  index_t out_h, out_w;

  CONV_EXT_HOST_DEVICE index_t out_plane() const { return out_h * out_w; }
  // Column matrix layout: rows (c, i, j) = c*kh*kw + i*kw + j; columns (n, oh, ow) = n*L + oh*Wo + ow.
  CONV_EXT_HOST_DEVICE index_t column_rows() const { return channels * kernel_h * kernel_w; }
  CONV_EXT_HOST_DEVICE index_t column_cols() const { return batch * out_plane(); }
  CONV_EXT_HOST_DEVICE index_t column_numel() const { return column_rows() * column_cols(); }
  // The work items of im2col_element: one per (input channel, column).
  CONV_EXT_HOST_DEVICE index_t channel_columns() const { return channels * column_cols(); }
  CONV_EXT_HOST_DEVICE index_t input_numel() const { return batch * channels * height * width; }

  // True when the int32_t math is exact for this chunk: every offset is below column_numel() or
  // input_numel(), and every row or column coordinate a tap computes lies within
  // [-pad - (kernel - 1) * dilation, length + 2 * pad] (the output length keeps (out - 1) * stride within the
  // padded input).
  bool fits_int32_indexing() const {
    constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
    const auto extent = [](int64_t length, int64_t kernel, int64_t pad, int64_t dilation) {
      return length + 2 * pad + (kernel - 1) * dilation;
    };
    return column_numel() <= kMax && input_numel() <= kMax &&
           extent(height, kernel_h, pad_h, dilation_h) <= kMax && extent(width, kernel_w, pad_w, dilation_w) <= kMax;
  }

  // The same geometry in another index type (for int32_t, check fits_int32_indexing() first).
  template <typename other_t>
  BasicConvGeometry<other_t> as() const {
    return {static_cast<other_t>(batch), static_cast<other_t>(channels), static_cast<other_t>(height),
            static_cast<other_t>(width), static_cast<other_t>(kernel_h), static_cast<other_t>(kernel_w),
            static_cast<other_t>(stride_h), static_cast<other_t>(stride_w), static_cast<other_t>(pad_h),
            static_cast<other_t>(pad_w), static_cast<other_t>(dilation_h), static_cast<other_t>(dilation_w),
            static_cast<other_t>(out_h), static_cast<other_t>(out_w)};
  }
};

using ConvGeometry = BasicConvGeometry<int64_t>;

// Calls launch(geometry) with the geometry in the narrowest index type that is exact for it (see
// BasicConvGeometry): the one place a launcher picks int32_t or int64_t math.
template <typename Launch>
void with_index_type(const ConvGeometry& geometry, Launch&& launch) {
  if (geometry.fits_int32_indexing()) {
    launch(geometry.as<int32_t>());
  } else {
    launch(geometry);
  }
}

// 0 <= a < b in one compare (Caffe's trick): a negative a wraps to a huge unsigned value.
template <typename index_t>
CONV_EXT_HOST_DEVICE inline bool in_range(index_t a, index_t b) {
  using unsigned_t = std::make_unsigned_t<index_t>;
  return static_cast<unsigned_t>(a) < static_cast<unsigned_t>(b);
}

// One column of the column matrix: sample n at output position (oh, ow), column n*L + oh*Wo + ow.
template <typename index_t>
struct OutputPosition {
  index_t n, oh, ow;
};

template <typename index_t>
CONV_EXT_HOST_DEVICE inline OutputPosition<index_t> output_position(index_t column,
                                                                    const BasicConvGeometry<index_t>& g) {
  return {column / g.out_plane(), (column / g.out_w) % g.out_h, column % g.out_w};
}

// im2col's index math: the input element that tap (i, j) of channel c reads at output position p, as an offset
// into the chunk's input (N, C, H, W), or -1 where the tap falls in the padding:
//   columns[(c*kh + i)*kw + j, n*L + oh*Wo + ow] = input[n, c, oh*s_h - p_h + i*d_h, ow*s_w - p_w + j*d_w]
template <typename index_t>
CONV_EXT_HOST_DEVICE inline index_t tap_source_offset(const OutputPosition<index_t>& p, index_t c, index_t i,
                                                      index_t j, const BasicConvGeometry<index_t>& g) {
  const index_t h = p.oh * g.stride_h - g.pad_h + i * g.dilation_h;
  const index_t w = p.ow * g.stride_w - g.pad_w + j * g.dilation_w;
  return (in_range(h, g.height) && in_range(w, g.width)) ? ((p.n * g.channels + c) * g.height + h) * g.width + w
                                                          : -1;
}

// The same for column entry `index` in [0, column_numel()) (how the tests address the math).
template <typename index_t>
CONV_EXT_HOST_DEVICE inline index_t im2col_source_offset(index_t index, const BasicConvGeometry<index_t>& g) {
  const index_t row = index / g.column_cols();  // (c, i, j)
  return tap_source_offset(output_position(index % g.column_cols(), g), row / (g.kernel_h * g.kernel_w),
                           (row / g.kernel_w) % g.kernel_h, row % g.kernel_w, g);
}

// im2col: every tap of channel c at one column (the kh*kw entries of that column in c's rows). index runs over
// [0, channel_columns()) as (c, column): a handful of integer divisions per kh*kw entries, not per entry (they
// dominate the cost on a GPU), and consecutive indices still write consecutive entries of each row.
template <typename scalar_t, typename index_t>
CONV_EXT_HOST_DEVICE inline void im2col_element(
    index_t index, const scalar_t* input, scalar_t* columns, const BasicConvGeometry<index_t>& g) {
  const index_t cols = g.column_cols();
  const index_t c = index / cols;
  const index_t column = index % cols;
  const OutputPosition<index_t> p = output_position(column, g);
  index_t offset = c * g.kernel_h * g.kernel_w * cols + column;
  for (index_t i = 0; i < g.kernel_h; ++i) {
    for (index_t j = 0; j < g.kernel_w; ++j, offset += cols) {
      const index_t source = tap_source_offset(p, c, i, j, g);
      columns[offset] = source >= 0 ? input[source] : scalar_t(0);
    }
  }
}

// col2im's index math: calls visit(offset) for the offset into the column matrix of every column entry that
// read input element `index` (over [0, input_numel())), taps in order. The element at (n, c, h, w) was read by
// tap (i, j) at output (oh, ow) when h = oh*s_h - p_h + i*d_h, i.e. oh = (h + p_h - i*d_h) / s_h, if that
// divides exactly and 0 <= oh < Ho (and the same for w).
template <typename index_t, typename Visit>
CONV_EXT_HOST_DEVICE inline void col2im_for_each_source(index_t index, const BasicConvGeometry<index_t>& g,
                                                        Visit&& visit) {
  const index_t w = index % g.width;
  index_t rest = index / g.width;
  const index_t h = rest % g.height;
  rest /= g.height;
  const index_t c = rest % g.channels;
  const index_t n = rest / g.channels;
  const index_t column_stride = g.column_cols();  // distance between consecutive column rows
  const index_t sample_offset = n * g.out_plane();
  for (index_t i = 0; i < g.kernel_h; ++i) {
    const index_t oh_scaled = h + g.pad_h - i * g.dilation_h;
    if (oh_scaled % g.stride_h != 0) continue;  // C++ remainder is 0 only for exact multiples, sign or not
    const index_t oh = oh_scaled / g.stride_h;
    if (!in_range(oh, g.out_h)) continue;
    for (index_t j = 0; j < g.kernel_w; ++j) {
      const index_t ow_scaled = w + g.pad_w - j * g.dilation_w;
      if (ow_scaled % g.stride_w != 0) continue;
      const index_t ow = ow_scaled / g.stride_w;
      if (!in_range(ow, g.out_w)) continue;
      const index_t row = (c * g.kernel_h + i) * g.kernel_w + j;
      visit(row * column_stride + sample_offset + oh * g.out_w + ow);
    }
  }
}

// col2im as a gather: one input element sums every column entry that read it, so no two threads ever write
// the same place (no atomics, deterministic on any device).
template <typename scalar_t, typename acc_t, typename index_t>
CONV_EXT_HOST_DEVICE inline void col2im_gather_element(
    index_t index, const scalar_t* columns, scalar_t* grad_input, const BasicConvGeometry<index_t>& g) {
  acc_t sum = acc_t(0);
  col2im_for_each_source(index, g, [&](index_t offset) { sum += static_cast<acc_t>(columns[offset]); });
  grad_input[index] = static_cast<scalar_t>(sum);
}

}  // namespace conv_ext
