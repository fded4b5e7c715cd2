// The fast CPU path: the convolution sample by sample, in tiles of output rows whose columns stay in the
// cache between im2col and the GEMM. Samples run in parallel (one GEMM per tile, single-threaded inside the
// parallel region) when the batch has at least as many samples as threads; otherwise samples run one after
// another with multi-threaded GEMMs and im2col/col2im parallel over rows/channels. No output permutes: each
// tile's GEMM writes its block of the (N, O, Ho*Wo) output, and reads its block of grad_output, in place.
//
// Memory: one tile of columns per thread (two in backward: columns and their gradient), bounded by the
// workspace limit; the tile shrinks to a single output row before the bound is exceeded.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <type_traits>

#include "../conv2d.h"
#include "column_rows.h"
#include "tiled_conv2d.h"

namespace conv_ext::cpu {

namespace {

// A tile of columns this size stays in a core's L2 cache from im2col to GEMM.
constexpr int64_t kTileTargetBytes = int64_t{512} << 10;

struct TiledProblem {
  ConvGeometry g;  // g.batch is the whole batch
  int64_t groups, out_channels, group_out_channels, group_rows;  // group_rows: K = (C/g)*kh*kw
  int64_t rows_per_tile;  // output rows per tile
  int64_t threads;  // threads that may each hold a tile buffer
  bool pointwise;  // 1x1, stride 1, no padding: the columns are the input itself

  int64_t tile_numel() const { return g.column_rows() * rows_per_tile * g.out_w; }
};

TiledProblem make_tiled_problem(const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
                                at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, int64_t buffers) {
  TiledProblem p{};
  p.g = make_geometry(input, weight, stride, padding, dilation);
  p.groups = groups;
  p.out_channels = weight.size(0);
  p.group_out_channels = p.out_channels / groups;
  p.group_rows = p.g.column_rows() / groups;
  p.pointwise = p.g.kernel_h == 1 && p.g.kernel_w == 1 && p.g.stride_h == 1 && p.g.stride_w == 1 &&
                p.g.pad_h == 0 && p.g.pad_w == 0;
  // Parallel over samples needs a tile buffer per thread: only when the batch and the bound allow it.
  const int64_t row_bytes = p.g.column_rows() * p.g.out_w * input.element_size() * std::max<int64_t>(buffers, 1);
  const int64_t threads = at::get_num_threads();
  p.threads = p.g.batch >= threads && row_bytes * threads <= workspace_limit_bytes() ? threads : 1;
  const int64_t budget = std::min(kTileTargetBytes, workspace_limit_bytes() / p.threads);
  p.rows_per_tile = std::clamp<int64_t>(budget / std::max<int64_t>(row_bytes, 1), 1, std::max<int64_t>(p.g.out_h, 1));
  return p;
}

// Runs body(sample, thread) over the batch: in parallel over samples, or one after another on thread 0.
template <typename Body>
void for_each_sample(const TiledProblem& p, const Body& body) {
  if (p.threads > 1) {
    at::parallel_for(0, p.g.batch, 1, [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n) body(n, static_cast<int64_t>(at::get_thread_num()));
    });
  } else {
    for (int64_t n = 0; n < p.g.batch; ++n) body(n, 0);
  }
}

// Columns of output rows [oh_begin, oh_end) of one sample, as (C*kh*kw, rows*Wo) in `columns`.
template <typename scalar_t>
void im2col_tile(const scalar_t* sample, scalar_t* columns, int64_t oh_begin, int64_t oh_end, const ConvGeometry& g) {
  const int64_t tile_cols = (oh_end - oh_begin) * g.out_w;
  at::parallel_for(0, g.column_rows(), std::max<int64_t>(1, 4096 / tile_cols), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      im2col_row(sample, columns + row * tile_cols, row, oh_begin, oh_end, g);
    }
  });
}

// Adds the column gradient of a tile onto one sample's input gradient, channel planes in parallel; within a
// plane, taps in a fixed order.
template <typename acc_t, typename scalar_t>
void col2im_tile_add(const scalar_t* columns, acc_t* sample, int64_t oh_begin, int64_t oh_end, const ConvGeometry& g) {
  const int64_t tile_cols = (oh_end - oh_begin) * g.out_w, kernel_area = g.kernel_h * g.kernel_w;
  at::parallel_for(0, g.channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      acc_t* plane = sample + c * g.height * g.width;
      for (int64_t row = c * kernel_area; row < (c + 1) * kernel_area; ++row) {
        col2im_row_add(plane, columns + row * tile_cols, row, oh_begin, oh_end, g);
      }
    }
  });
}

// A (rows, L) matrix of one sample as (groups, rows/groups, tile) for output rows [oh_begin, oh_end): the
// operand of one batched GEMM over the groups.
at::Tensor groups_tile(const at::Tensor& matrix, int64_t groups, int64_t oh_begin, int64_t oh_end, int64_t out_w) {
  return matrix.view({groups, matrix.size(0) / groups, matrix.size(1)})
      .narrow(2, oh_begin * out_w, (oh_end - oh_begin) * out_w);
}

// Buffer `index` of a thread's tiles as the contiguous (C*kh*kw, tile_cols) matrix that im2col_tile and
// col2im_tile_add index (the last tile of a sample may be shorter than the others).
at::Tensor tile_columns(const at::Tensor& thread_tiles, int64_t index, int64_t tile_cols, const TiledProblem& p) {
  const int64_t rows = p.g.column_rows();
  return thread_tiles.narrow(0, index * p.tile_numel(), rows * tile_cols).view({rows, tile_cols});
}

// `buffers` tiles of columns per thread (none for a pointwise forward).
at::Tensor allocate_tiles(const TiledProblem& p, int64_t buffers, const at::Tensor& like) {
  const int64_t numel = p.tile_numel() * buffers;
  record_workspace_bytes(p.threads * numel * like.element_size());
  return at::empty({p.threads, numel}, like.options());
}

}  // namespace

at::Tensor conv2d_forward_tiled(const at::Tensor& input_arg, const at::Tensor& weight_arg,
                                const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  check_conv2d_args(input_arg, weight_arg, bias, stride, padding, dilation, groups);
  // The ATen calls below are our implementation, not part of the autograd graph (and out= ops refuse
  // inputs that require grad, as in a double backward).
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const at::Tensor input = input_arg.contiguous();
  const at::Tensor weight = weight_arg.contiguous();
  const TiledProblem p = make_tiled_problem(input, weight, stride, padding, dilation, groups, 1);
  const ConvGeometry& g = p.g;
  at::Tensor output = at::empty({g.batch, p.out_channels, g.out_h, g.out_w}, input.options());
  if (output.numel() == 0) return output;
  const at::Tensor weight_groups = weight.view({groups, p.group_out_channels, p.group_rows});
  const std::optional<at::Tensor> bias_groups =
      bias ? std::optional<at::Tensor>(bias->view({groups, p.group_out_channels, 1})) : std::nullopt;
  const at::Tensor tiles = allocate_tiles(p, p.pointwise ? 0 : 1, input);

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "conv2d_forward_tiled", [&] {
    for_each_sample(p, [&](int64_t n, int64_t thread) {
      const at::Tensor output_n = output[n].view({p.out_channels, g.out_plane()});
      const at::Tensor input_n = input[n].view({g.channels, g.height * g.width});
      for (int64_t oh_begin = 0; oh_begin < g.out_h; oh_begin += p.rows_per_tile) {
        const int64_t oh_end = std::min(g.out_h, oh_begin + p.rows_per_tile);
        at::Tensor columns = input_n;  // pointwise: the input is its own column matrix
        if (!p.pointwise) {
          columns = tile_columns(tiles[thread], 0, (oh_end - oh_begin) * g.out_w, p);
          im2col_tile(input_n.const_data_ptr<scalar_t>(), columns.mutable_data_ptr<scalar_t>(), oh_begin, oh_end, g);
        }
        // One GEMM per group, batched: (g, O/g, K) @ (g, K, tile) -> the output tile, in place.
        at::Tensor out = groups_tile(output_n, groups, oh_begin, oh_end, g.out_w);
        const at::Tensor cols = p.pointwise ? groups_tile(columns, groups, oh_begin, oh_end, g.out_w)
                                            : columns.view({groups, p.group_rows, -1});
        if (bias_groups) {  // out = bias + W . cols (the bias is the GEMM's beta term)
          at::baddbmm_out(out, *bias_groups, weight_groups, cols);
        } else {
          at::bmm_out(out, weight_groups, cols);
        }
      }
    });
  });
  return output;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_backward_tiled(
    const at::Tensor& grad_output_arg, const at::Tensor& input_arg, const at::Tensor& weight_arg,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
    std::array<bool, 3> output_mask) {
  check_conv2d_backward_args(grad_output_arg, input_arg, weight_arg, stride, padding, dilation, groups);
  // The ATen calls below are our implementation, not part of the autograd graph (and out= ops refuse
  // inputs that require grad, as in a double backward).
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const at::Tensor grad_output = grad_output_arg.contiguous();
  const at::Tensor input = input_arg.contiguous();
  const at::Tensor weight = weight_arg.contiguous();
  const bool need_input = output_mask[0], need_weight = output_mask[1], need_bias = output_mask[2];
  const TiledProblem p = make_tiled_problem(input, weight, stride, padding, dilation, groups,
                                            int64_t(need_input) + int64_t(need_weight));
  // Tile buffers: the columns for dw (none when pointwise: the input is its own columns), then dcols for dx.
  const int64_t columns_buffers = need_weight && !p.pointwise ? 1 : 0;
  const ConvGeometry& g = p.g;
  auto unused = [&] { return at::empty({0}, input.options()); };  // outputs must not alias
  const auto accumulate_dtype = at::toOpMathType(input.scalar_type());
  const bool accumulate_in_place = accumulate_dtype == input.scalar_type();

  // dx accumulates tile by tile; the half types sum in float32 and are rounded once at the end.
  at::Tensor grad_input_acc = need_input ? at::zeros(input.sizes(), input.options().dtype(accumulate_dtype)) : unused();
  // dw: one partial sum per thread, added in thread order at the end (deterministic for a thread count).
  at::Tensor grad_weight_partials = need_weight
      ? at::zeros({p.threads, groups, p.group_out_channels, p.group_rows}, weight.options().dtype(accumulate_dtype))
      : unused();
  if ((need_input || need_weight) && grad_output.numel() > 0) {
    const at::Tensor weight_groups = weight.view({groups, p.group_out_channels, p.group_rows});
    const at::Tensor tiles = allocate_tiles(p, columns_buffers + int64_t(need_input), input);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "conv2d_backward_tiled", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      for_each_sample(p, [&](int64_t n, int64_t thread) {
        const at::Tensor grad_output_n = grad_output[n].view({p.out_channels, g.out_plane()});
        const at::Tensor input_n = input[n].view({g.channels, g.height * g.width});
        for (int64_t oh_begin = 0; oh_begin < g.out_h; oh_begin += p.rows_per_tile) {
          const int64_t oh_end = std::min(g.out_h, oh_begin + p.rows_per_tile);
          const int64_t tile_cols = (oh_end - oh_begin) * g.out_w;
          const at::Tensor dy = groups_tile(grad_output_n, groups, oh_begin, oh_end, g.out_w);  // (g, O/g, tile)
          if (need_weight) {  // dw += dy . cols^T, per group: (g, O/g, tile) @ (g, tile, K)
            at::Tensor columns = input_n;
            if (!p.pointwise) {
              columns = tile_columns(tiles[thread], 0, tile_cols, p);
              im2col_tile(input_n.const_data_ptr<scalar_t>(), columns.mutable_data_ptr<scalar_t>(), oh_begin,
                          oh_end, g);
            }
            const at::Tensor cols = p.pointwise ? groups_tile(columns, groups, oh_begin, oh_end, g.out_w)
                                                : columns.view({groups, p.group_rows, -1});
            at::Tensor partial = grad_weight_partials[thread];
            if (accumulate_in_place) {
              partial.baddbmm_(dy, cols.transpose(1, 2));
            } else {
              partial.add_(at::bmm(dy, cols.transpose(1, 2)));
            }
          }
          if (need_input) {  // dcols = W^T . dy per group, then col2im adds the tile onto dx
            at::Tensor grad_columns = tile_columns(tiles[thread], columns_buffers, tile_cols, p);
            at::Tensor grad_columns_groups = grad_columns.view({groups, p.group_rows, tile_cols});
            at::bmm_out(grad_columns_groups, weight_groups.transpose(1, 2), dy);
            col2im_tile_add(grad_columns.const_data_ptr<scalar_t>(), grad_input_acc[n].mutable_data_ptr<acc_t>(),
                            oh_begin, oh_end, g);
          }
        }
      });
    });
  }
  at::Tensor grad_input = need_input ? grad_input_acc.to(input.scalar_type()) : unused();
  at::Tensor grad_weight =
      need_weight ? grad_weight_partials.sum(0).view(weight.sizes()).to(weight.scalar_type()) : unused();
  at::Tensor grad_bias = need_bias ? grad_output.sum({0, 2, 3}) : unused();
  return {grad_input, grad_weight, grad_bias};
}

}  // namespace conv_ext::cpu
