// The fast CPU column kernels: the same lowering as im2col.h, organised for a cache and a vector unit instead
// of one thread per element. im2col copies whole output rows (contiguous when stride_w == 1) with zero fill
// at the borders; col2im adds whole rows back onto each input plane. Both run in parallel over independent
// (column row, sample) or (sample, channel) pairs, so every output element is written by one thread, in a
// fixed order: the results are deterministic. Tested against the same oracle as the reference kernels.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "../conv2d.h"

namespace conv_ext {

namespace {

// The output columns [begin, end) of an output row whose taps fall inside the input: w = ow*s - p + j*d lies
// in [0, W) exactly for those ow.
struct ValidRange {
  int64_t begin, end;
};

ValidRange valid_outputs(int64_t out_length, int64_t in_length, int64_t stride, int64_t offset) {
  // offset = j*d - p; need 0 <= ow*stride + offset < in_length.
  const int64_t first = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  const int64_t last = in_length - offset <= 0 ? 0 : (in_length - offset + stride - 1) / stride;
  const int64_t begin = std::min(first, out_length);
  return {begin, std::max(begin, std::min(last, out_length))};
}

template <typename scalar_t>
void im2col_rows(const scalar_t* input, scalar_t* columns, const ConvGeometry& g) {
  const int64_t kernel_area = g.kernel_h * g.kernel_w;
  const int64_t L = g.out_plane();
  const int64_t column_stride = g.column_cols();
  // One task per (column row, sample): a contiguous block of L entries of the column matrix.
  at::parallel_for(0, g.column_rows() * g.batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t row = task / g.batch, n = task % g.batch;
      const int64_t c = row / kernel_area, i = (row / g.kernel_w) % g.kernel_h, j = row % g.kernel_w;
      const scalar_t* plane = input + (n * g.channels + c) * g.height * g.width;
      scalar_t* out = columns + row * column_stride + n * L;
      const int64_t w_offset = j * g.dilation_w - g.pad_w;
      const ValidRange cols = valid_outputs(g.out_w, g.width, g.stride_w, w_offset);
      for (int64_t oh = 0; oh < g.out_h; ++oh, out += g.out_w) {
        const int64_t h = oh * g.stride_h - g.pad_h + i * g.dilation_h;
        if (!in_range(h, g.height)) {
          std::fill(out, out + g.out_w, scalar_t(0));
          continue;
        }
        std::fill(out, out + cols.begin, scalar_t(0));
        const scalar_t* src = plane + h * g.width;
        if (g.stride_w == 1) {
          std::copy(src + cols.begin + w_offset, src + cols.end + w_offset, out + cols.begin);
        } else {
          for (int64_t ow = cols.begin; ow < cols.end; ++ow) out[ow] = src[ow * g.stride_w + w_offset];
        }
        std::fill(out + cols.end, out + g.out_w, scalar_t(0));
      }
    }
  });
}

template <typename scalar_t>
void col2im_planes(const scalar_t* columns, scalar_t* grad_input, const ConvGeometry& g) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t plane_size = g.height * g.width;
  const int64_t L = g.out_plane();
  const int64_t column_stride = g.column_cols();
  // One task per (sample, channel) input plane: it sums, tap by tap and row by row, the column rows that read
  // the plane. The order of the sum is fixed, whatever the thread count.
  at::parallel_for(0, g.batch * g.channels, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> sum(plane_size);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / g.channels, c = task % g.channels;
      std::fill(sum.begin(), sum.end(), acc_t(0));
      for (int64_t i = 0; i < g.kernel_h; ++i) {
        for (int64_t j = 0; j < g.kernel_w; ++j) {
          const int64_t row = (c * g.kernel_h + i) * g.kernel_w + j;
          const scalar_t* in = columns + row * column_stride + n * L;
          const int64_t w_offset = j * g.dilation_w - g.pad_w;
          const ValidRange cols = valid_outputs(g.out_w, g.width, g.stride_w, w_offset);
          for (int64_t oh = 0; oh < g.out_h; ++oh, in += g.out_w) {
            const int64_t h = oh * g.stride_h - g.pad_h + i * g.dilation_h;
            if (!in_range(h, g.height)) continue;
            acc_t* dst = sum.data() + h * g.width;
            for (int64_t ow = cols.begin; ow < cols.end; ++ow) dst[ow * g.stride_w + w_offset] += acc_t(in[ow]);
          }
        }
      }
      std::copy(sum.begin(), sum.end(), grad_input + task * plane_size);
    }
  });
}

void im2col_cpu_fast(const at::Tensor& input, const at::Tensor& columns, const ConvGeometry& geometry) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "im2col_cpu_fast", [&] {
    im2col_rows(input.const_data_ptr<scalar_t>(), columns.mutable_data_ptr<scalar_t>(), geometry);
  });
}

void col2im_cpu_fast(const at::Tensor& columns, const at::Tensor& grad_input, const ConvGeometry& geometry) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, columns.scalar_type(), "col2im_cpu_fast", [&] {
    col2im_planes(columns.const_data_ptr<scalar_t>(), grad_input.mutable_data_ptr<scalar_t>(), geometry);
  });
}

}  // namespace

const ColumnKernels& cpu_fast_kernels() {
  static const ColumnKernels kernels{&im2col_cpu_fast, &col2im_cpu_fast};
  return kernels;
}

}  // namespace conv_ext
