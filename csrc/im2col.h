// The per-element bodies of im2col and col2im, shared by every launcher.
//
// These functions are the math of the lowering; the CUDA kernels are grid-stride loops over them and a host
// loop can run the very same bodies, which is how the CPU tests exercise the code that the GPU runs.
// The header compiles with a plain C++ compiler too (CONV_EXT_HOST_DEVICE is then empty).
#pragma once

#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define CONV_EXT_HOST_DEVICE __host__ __device__
#else
#define CONV_EXT_HOST_DEVICE
#endif

namespace conv_ext {

// Everything the index math needs about one chunk of the batch. All sizes are int64_t so that index products
// never overflow, whatever the tensor sizes.
struct ConvGeometry {
  int64_t batch;  // samples in this chunk
  int64_t channels;  // input channels (all groups)
  int64_t height, width;  // input plane
  int64_t kernel_h, kernel_w;
  int64_t stride_h, stride_w;
  int64_t pad_h, pad_w;
  int64_t dilation_h, dilation_w;
  int64_t out_h, out_w;

  CONV_EXT_HOST_DEVICE int64_t out_plane() const { return out_h * out_w; }
  // Column matrix layout: rows (c, i, j) = c*kh*kw + i*kw + j; columns (n, oh, ow) = n*L + oh*Wo + ow.
  CONV_EXT_HOST_DEVICE int64_t column_rows() const { return channels * kernel_h * kernel_w; }
  CONV_EXT_HOST_DEVICE int64_t column_cols() const { return batch * out_plane(); }
  CONV_EXT_HOST_DEVICE int64_t column_numel() const { return column_rows() * column_cols(); }
  CONV_EXT_HOST_DEVICE int64_t input_numel() const { return batch * channels * height * width; }
};

// 0 <= a < b in one compare (Caffe's trick): a negative a wraps to a huge unsigned value.
CONV_EXT_HOST_DEVICE inline bool in_range(int64_t a, int64_t b) {
  return static_cast<uint64_t>(a) < static_cast<uint64_t>(b);
}

// im2col's index math: the input element that column entry `index` reads, as an offset into the chunk's
// input (N, C, H, W), or -1 where the tap falls in the padding. index runs over [0, column_numel()):
//   columns[(c*kh + i)*kw + j, n*L + oh*Wo + ow] = input[n, c, oh*s_h - p_h + i*d_h, ow*s_w - p_w + j*d_w]
CONV_EXT_HOST_DEVICE inline int64_t im2col_source_offset(int64_t index, const ConvGeometry& g) {
  const int64_t ow = index % g.out_w;
  int64_t rest = index / g.out_w;
  const int64_t oh = rest % g.out_h;
  rest /= g.out_h;
  const int64_t n = rest % g.batch;
  rest /= g.batch;  // rest is now the column row (c, i, j)
  const int64_t j = rest % g.kernel_w;
  const int64_t i = (rest / g.kernel_w) % g.kernel_h;
  const int64_t c = rest / (g.kernel_w * g.kernel_h);
  const int64_t h = oh * g.stride_h - g.pad_h + i * g.dilation_h;
  const int64_t w = ow * g.stride_w - g.pad_w + j * g.dilation_w;
  return (in_range(h, g.height) && in_range(w, g.width)) ? ((n * g.channels + c) * g.height + h) * g.width + w
                                                          : -1;
}

// im2col: writes one entry of the column matrix (zero in the padding).
template <typename scalar_t>
CONV_EXT_HOST_DEVICE inline void im2col_element(
    int64_t index, const scalar_t* input, scalar_t* columns, const ConvGeometry& g) {
  const int64_t source = im2col_source_offset(index, g);
  columns[index] = source >= 0 ? input[source] : scalar_t(0);
}

// col2im's index math: calls visit(offset) for the offset into the column matrix of every column entry that
// read input element `index` (over [0, input_numel())), taps in order. The element at (n, c, h, w) was read by
// tap (i, j) at output (oh, ow) when h = oh*s_h - p_h + i*d_h, i.e. oh = (h + p_h - i*d_h) / s_h, if that
// divides exactly and 0 <= oh < Ho (and the same for w).
template <typename Visit>
CONV_EXT_HOST_DEVICE inline void col2im_for_each_source(int64_t index, const ConvGeometry& g, Visit&& visit) {
  const int64_t w = index % g.width;
  int64_t rest = index / g.width;
  const int64_t h = rest % g.height;
  rest /= g.height;
  const int64_t c = rest % g.channels;
  const int64_t n = rest / g.channels;
  const int64_t column_stride = g.column_cols();  // distance between consecutive column rows
  const int64_t sample_offset = n * g.out_plane();
  for (int64_t i = 0; i < g.kernel_h; ++i) {
    const int64_t oh_scaled = h + g.pad_h - i * g.dilation_h;
    if (oh_scaled % g.stride_h != 0) continue;  // C++ remainder is 0 only for exact multiples, sign or not
    const int64_t oh = oh_scaled / g.stride_h;
    if (!in_range(oh, g.out_h)) continue;
    for (int64_t j = 0; j < g.kernel_w; ++j) {
      const int64_t ow_scaled = w + g.pad_w - j * g.dilation_w;
      if (ow_scaled % g.stride_w != 0) continue;
      const int64_t ow = ow_scaled / g.stride_w;
      if (!in_range(ow, g.out_w)) continue;
      const int64_t row = (c * g.kernel_h + i) * g.kernel_w + j;
      visit(row * column_stride + sample_offset + oh * g.out_w + ow);
    }
  }
}

// col2im as a gather: one input element sums every column entry that read it, so no two threads ever write
// the same place (no atomics, deterministic on any device).
template <typename scalar_t, typename acc_t>
CONV_EXT_HOST_DEVICE inline void col2im_gather_element(
    int64_t index, const scalar_t* columns, scalar_t* grad_input, const ConvGeometry& g) {
  acc_t sum = acc_t(0);
  col2im_for_each_source(index, g, [&](int64_t offset) { sum += static_cast<acc_t>(columns[offset]); });
  grad_input[index] = static_cast<scalar_t>(sum);
}

}  // namespace conv_ext
