// The tiled path on channels_last tensors (nhwc_conv2d.h). The output positions L = N*Ho*Wo are cut into blocks
// ("tiles") of rows; a tile's columns are written by im2col in parallel over its positions, then one GEMM per tile
// (ATen's, multi-threaded) reads them. The backward walks the same tiles: dw sums columns^T-weighted dy over them,
// dx is the GEMM dy . weight into the tile's column gradient, then col2im adds it onto dx in parallel over blocks
// of channels (each element one writer, a fixed order: deterministic).
#include "cpu/channels_last/nhwc_conv2d.h"
#include "cpu/channels_last/nhwc_tensors.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>

#include "cpu/tiled/gemm.h"
#include "cpu/tiled/tiled_conv2d.h"
#include "cpu/valid_range.h"
#include "ops/conv2d_args.h"
#include "ops/settings.h"

namespace conv_ext::cpu {

namespace {

struct NhwcProblem {
  ConvGeometry g;
  int64_t positions;  // L = N*Ho*Wo
  int64_t depth;      // K = kh*kw*C
  bool pointwise;     // 1x1, stride 1, no padding: the input rows are the columns
  int64_t tile;       // positions per tile
};

NhwcProblem make_problem(const ConvGeometry& g, int64_t element_size, int64_t buffers) {
  NhwcProblem p{g, g.batch * g.out_h * g.out_w, g.kernel_h * g.kernel_w * g.channels, false, 0};
  p.pointwise = is_pointwise(g);
  const int64_t row_bytes = std::max<int64_t>(p.depth * element_size * std::max<int64_t>(buffers, 1), 1);
  const int64_t by_bytes = std::max(kTileTargetBytes / row_bytes, kMinTileColumns);
  // Within the workspace bound, one position at least.
  p.tile = std::clamp<int64_t>(std::min(by_bytes, workspace_limit_bytes() / row_bytes), 1,
                               std::max<int64_t>(p.positions, 1));
  // The tiles bound the columns' memory. A pointwise pass has none: one GEMM over every position, where tiles
  // cost a GEMM call (and a wake-up of ATen's threads) each (x torch's time, AVX-512, Intel Xeon, 2 threads,
  // channels_last, tiles of 512 KiB of rows against one GEMM: forward+backward of ResNet-50's 64->256 at 56x56
  // 1.24 / 1.10 against 1.16 / 1.05 at batch 8 / 32, 256->64 1.18 / 1.15 against 1.08 / 1.07; MobileNetV2's
  // 144->24 at batch 32 1.13 against 0.96; the forward of 12 1x1 layers of MobileNetV2, EfficientNet-B0 and
  // ResNet-50 at batch 1, 8, 32 summed 11.33 against 11.03; one loss: 16->96 at 112x112, batch 32, 1.03 -> 1.08).
  if (p.pointwise) p.tile = std::max<int64_t>(p.positions, 1);
  return p;
}

// Position q = (n*Ho + oh)*Wo + ow.
struct Position {
  int64_t n, oh, ow;
};
Position position(int64_t q, const ConvGeometry& g) {
  return {q / (g.out_h * g.out_w), (q / g.out_w) % g.out_h, q % g.out_w};
}

// Columns of positions [q0, q0 + count): row r holds, tap by tap (i, j), the C channels of the input pixel that
// tap reads for position q0 + r, or zeros where it falls in the padding.
template <typename scalar_t>
void im2col_nhwc(const scalar_t* input, scalar_t* columns, int64_t q0, int64_t count, const ConvGeometry& g) {
  const int64_t C = g.channels, depth = g.kernel_h * g.kernel_w * C;
  at::parallel_for(0, count, std::max<int64_t>(1, 16384 / depth), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const Position at = position(q0 + r, g);
      scalar_t* out = columns + r * depth;
      for (int64_t i = 0; i < g.kernel_h; ++i) {
        const int64_t h = at.oh * g.stride_h - g.pad_h + i * g.dilation_h;
        for (int64_t j = 0; j < g.kernel_w; ++j, out += C) {
          const int64_t w = at.ow * g.stride_w - g.pad_w + j * g.dilation_w;
          if (in_range(h, g.height) && in_range(w, g.width)) {
            const scalar_t* pixel = input + ((at.n * g.height + h) * g.width + w) * C;
            std::copy(pixel, pixel + C, out);
          } else {
            std::fill(out, out + C, scalar_t(0));
          }
        }
      }
    }
  });
}

// Adds the column gradient of positions [q0, q0 + count) onto dx (N, H, W, C): the inverse of im2col_nhwc. Every
// element of dx has one writer, who adds in position order: in parallel over the positions where the windows do not
// overlap (a stride at least the dilated kernel's extent, as in a strided 1x1 layer: each input pixel is read by one
// position at most), else over blocks of channels.
template <typename scalar_t>
void col2im_nhwc_add(const scalar_t* columns, scalar_t* grad_input, int64_t q0, int64_t count,
                     const ConvGeometry& g) {
  const int64_t C = g.channels, depth = g.kernel_h * g.kernel_w * C;
  auto add_rows = [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    for (int64_t r = r0; r < r1; ++r) {
      const Position at = position(q0 + r, g);
      const scalar_t* in = columns + r * depth;
      for (int64_t i = 0; i < g.kernel_h; ++i) {
        const int64_t h = at.oh * g.stride_h - g.pad_h + i * g.dilation_h;
        for (int64_t j = 0; j < g.kernel_w; ++j, in += C) {
          const int64_t w = at.ow * g.stride_w - g.pad_w + j * g.dilation_w;
          if (!in_range(h, g.height) || !in_range(w, g.width)) continue;
          scalar_t* pixel = grad_input + ((at.n * g.height + h) * g.width + w) * C;
          for (int64_t c = c0; c < c1; ++c) pixel[c] += in[c];
        }
      }
    }
  };
  const bool disjoint_windows = g.stride_h > (g.kernel_h - 1) * g.dilation_h &&
                                g.stride_w > (g.kernel_w - 1) * g.dilation_w;
  if (disjoint_windows) {
    at::parallel_for(0, count, std::max<int64_t>(1, 16384 / depth),
                     [&](int64_t begin, int64_t end) { add_rows(begin, end, 0, C); });
    return;
  }
  constexpr int64_t kBlock = 64;
  at::parallel_for(0, (C + kBlock - 1) / kBlock, 1, [&](int64_t begin, int64_t end) {
    add_rows(0, count, begin * kBlock, std::min(C, end * kBlock));
  });
}

// The weight as (O, kh*kw*C), taps in the order of the columns: a channels_last weight's memory.
at::Tensor weight_rows(const at::Tensor& weight) {
  return channels_last(weight).permute({0, 2, 3, 1}).view(
      {weight.size(0), weight.size(1) * weight.size(2) * weight.size(3)});
}

// Runs body(q0, count) over the tiles: positions [q0, q0 + count), in order (the GEMMs thread inside).
template <typename Body>
void for_each_tile(const NhwcProblem& p, const Body& body) {
  for (int64_t q0 = 0; q0 < p.positions; q0 += p.tile) body(q0, std::min(p.tile, p.positions - q0));
}

}  // namespace

at::Tensor nhwc_conv2d(const at::Tensor& input_arg, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                       const ConvGeometry& g) {
  const at::Tensor input = channels_last(input_arg);
  const int64_t O = weight.size(0);
  at::Tensor output = new_channels_last({g.batch, O, g.out_h, g.out_w}, input);
  if (output.numel() == 0) return output;
  const NhwcProblem p = make_problem(g, input.element_size(), 1);
  const at::Tensor w_rows = weight_rows(weight);  // (O, K)
  const at::Tensor columns = p.pointwise ? at::Tensor() : at::empty({p.tile, p.depth}, input.options());
  if (columns.defined()) record_workspace_bytes(columns.numel() * columns.element_size());
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "nhwc_conv2d", [&] {
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    const scalar_t* bias_data = bias ? bias->const_data_ptr<scalar_t>() : nullptr;
    scalar_t* out = output.mutable_data_ptr<scalar_t>();
    for_each_tile(p, [&](int64_t q0, int64_t count) {
      // Pointwise: the input rows themselves.
      const scalar_t* tile_columns = p.pointwise ? in + q0 * p.depth : columns.const_data_ptr<scalar_t>();
      if (!p.pointwise) im2col_nhwc(in, columns.mutable_data_ptr<scalar_t>(), q0, count, g);
      // The output rows (count, O) = columns (count, K) . w_rows^T (K, O) + the bias along each row.
      gemm<scalar_t, scalar_t>(count, O, p.depth, {tile_columns, p.depth, 1},
                               {w_rows.const_data_ptr<scalar_t>(), 1, p.depth}, out + q0 * O, O, false,
                               {bias_data, 0, 1});
    });
  });
  return output;
}

std::pair<at::Tensor, at::Tensor> nhwc_conv2d_backward(const at::Tensor& grad_output_arg, const at::Tensor& input_arg,
                                                       const at::Tensor& weight, const ConvGeometry& g,
                                                       bool need_input, bool need_weight) {
  // The input in NHWC only where dw reads it (dx alone needs its sizes).
  const at::Tensor input = need_weight ? channels_last(input_arg) : input_arg;
  const at::Tensor grad_output = channels_last(grad_output_arg);
  const NhwcProblem p = make_problem(g, input.element_size(), int64_t(need_input) + int64_t(need_weight));
  const at::Tensor w_rows = weight_rows(weight);  // (O, K)
  at::Tensor grad_input = need_input ? new_channels_last(input.sizes(), input) : unrequested_output(input);
  // col2im adds into dx; a pointwise dx is written row by row by its GEMM, and zeroing it first would cost a pass
  // over memory (MobileNetV2's 144->24 1x1 at 56x56, batch 8: a 14 MB dx).
  if (need_input && !p.pointwise) grad_input.zero_();
  // dw as (O, K), in the columns' tap order: a channels_last weight's memory.
  at::Tensor grad_weight_rows = need_weight ? at::zeros_like(w_rows) : unrequested_output(input);
  const bool columns_needed = need_weight && !p.pointwise, grad_columns_needed = need_input && !p.pointwise;
  const at::Tensor columns = columns_needed ? at::empty({p.tile, p.depth}, input.options()) : at::Tensor();
  const at::Tensor grad_columns = grad_columns_needed ? at::empty({p.tile, p.depth}, input.options()) : at::Tensor();
  record_workspace_bytes((int64_t(columns_needed) + int64_t(grad_columns_needed)) * p.tile * p.depth *
                         input.element_size());
  if (p.positions > 0 && (need_input || need_weight)) {
    AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "nhwc_conv2d_backward", [&] {
      const int64_t O = weight.size(0), K = p.depth;
      const scalar_t* w = w_rows.const_data_ptr<scalar_t>();
      for_each_tile(p, [&](int64_t q0, int64_t count) {
        const scalar_t* dy = grad_output.const_data_ptr<scalar_t>() + q0 * O;  // (count, O)
        if (need_weight) {  // dw (O, K) += dy^T . columns
          // Pointwise: the input rows themselves.
          const scalar_t* tile_columns =
              p.pointwise ? input.const_data_ptr<scalar_t>() + q0 * K : columns.const_data_ptr<scalar_t>();
          if (!p.pointwise) {
            im2col_nhwc(input.const_data_ptr<scalar_t>(), columns.mutable_data_ptr<scalar_t>(), q0, count, g);
          }
          gemm<scalar_t, scalar_t>(O, K, count, {dy, 1, O}, {tile_columns, K, 1},
                                   grad_weight_rows.mutable_data_ptr<scalar_t>(), K, true);
        }
        if (need_input) {  // the column gradient dy . W, then col2im (pointwise: dx's rows themselves)
          scalar_t* tile_grad = p.pointwise ? grad_input.mutable_data_ptr<scalar_t>() + q0 * K
                                            : grad_columns.mutable_data_ptr<scalar_t>();
          gemm<scalar_t, scalar_t>(count, K, O, {dy, O, 1}, {w, K, 1}, tile_grad, K, false);
          if (!p.pointwise) col2im_nhwc_add(tile_grad, grad_input.mutable_data_ptr<scalar_t>(), q0, count, g);
        }
      });
    });
  }
  at::Tensor grad_weight = need_weight
      ? grad_weight_rows.view({weight.size(0), g.kernel_h, g.kernel_w, g.channels}).permute({0, 3, 1, 2})
      : grad_weight_rows;
  return {grad_input, grad_weight};
}

}  // namespace conv_ext::cpu
