// The fast CPU path: the convolution in tiles whose columns stay in the cache between im2col and the GEMM.
// A tile is a block of whole samples (small images) or a band of output rows of one sample (large images).
// Tiles run in parallel over the batch (each GEMM single-threaded inside the parallel region) when the batch
// has at least as many samples as threads; otherwise one after another, with multi-threaded GEMMs and
// im2col/col2im parallel over rows/channels. No permutes: each tile's GEMM writes its block of the (N, O, L)
// output, and reads its block of grad_output, in place. One batched GEMM per tile covers its samples and groups.
//
// Memory: one tile of columns per thread (two in backward: columns and their gradient), bounded by the
// workspace limit; the tile shrinks to a single output row of one sample before the bound is exceeded.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>

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
  int64_t samples_per_tile;  // > 1 only when whole samples fit in a tile
  int64_t rows_per_tile;  // output rows per tile (all of them when samples_per_tile > 1)
  int64_t threads;  // threads that may each hold a tile buffer
  bool pointwise;  // 1x1, stride 1, no padding: the columns are the input itself

  int64_t tile_numel() const { return samples_per_tile * g.column_rows() * rows_per_tile * g.out_w; }
};

// A tile: samples [n, n + samples), output rows [oh_begin, oh_end).
struct Tile {
  int64_t n, samples, oh_begin, oh_end;
  int64_t cols(int64_t out_w) const { return (oh_end - oh_begin) * out_w; }
};

TiledProblem make_tiled_problem(const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
                                at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, int64_t buffers) {
  TiledProblem p{};
  p.g = make_geometry(input, weight, stride, padding, dilation);
  const ConvGeometry& g = p.g;
  p.groups = groups;
  p.out_channels = weight.size(0);
  p.group_out_channels = p.out_channels / groups;
  p.group_rows = g.column_rows() / groups;
  p.pointwise = g.kernel_h == 1 && g.kernel_w == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 &&
                g.pad_w == 0;
  // Parallel over samples needs a tile buffer per thread: only when the batch and the bound allow it.
  const int64_t row_bytes = g.column_rows() * g.out_w * input.element_size() * std::max<int64_t>(buffers, 1);
  const int64_t threads = at::get_num_threads();
  p.threads = g.batch >= threads && row_bytes * threads <= workspace_limit_bytes() ? threads : 1;
  const int64_t budget = std::min(kTileTargetBytes, workspace_limit_bytes() / p.threads);
  const int64_t out_h = std::max<int64_t>(g.out_h, 1);
  p.rows_per_tile = std::clamp<int64_t>(budget / std::max<int64_t>(row_bytes, 1), 1, out_h);
  // Whole samples fit: put several in a tile (fewer, larger GEMMs), leaving a tile per thread at least.
  const int64_t per_thread = (g.batch + p.threads - 1) / p.threads;
  p.samples_per_tile = p.rows_per_tile == out_h
      ? std::clamp<int64_t>(budget / std::max<int64_t>(row_bytes * out_h, 1), 1, std::max<int64_t>(per_thread, 1))
      : 1;
  return p;
}

// Runs body(tile, thread) over every tile: in parallel over blocks of samples, or in order on thread 0.
template <typename Body>
void for_each_tile(const TiledProblem& p, const Body& body) {
  const int64_t blocks = (p.g.batch + p.samples_per_tile - 1) / p.samples_per_tile;
  auto run_block = [&](int64_t block, int64_t thread) {
    const int64_t n = block * p.samples_per_tile, samples = std::min(p.samples_per_tile, p.g.batch - n);
    for (int64_t oh_begin = 0; oh_begin < p.g.out_h; oh_begin += p.rows_per_tile) {
      body(Tile{n, samples, oh_begin, std::min(p.g.out_h, oh_begin + p.rows_per_tile)}, thread);
    }
  };
  if (p.threads > 1) {
    at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
      // The dispatcher's thread-local state does not follow into the worker threads: the GEMMs of the tiles
      // run below autograd there too.
      const at::AutoDispatchBelowADInplaceOrView below_autograd;
      for (int64_t block = begin; block < end; ++block) run_block(block, static_cast<int64_t>(at::get_thread_num()));
    });
  } else {
    for (int64_t block = 0; block < blocks; ++block) run_block(block, 0);
  }
}

// The tile's columns, (samples, C*kh*kw, tile cols), in `columns`: rows in parallel.
template <typename scalar_t>
void im2col_tile(const scalar_t* input, scalar_t* columns, const Tile& t, const ConvGeometry& g) {
  const int64_t tile_cols = t.cols(g.out_w), rows = g.column_rows();
  const int64_t sample_numel = g.channels * g.height * g.width;
  at::parallel_for(0, t.samples * rows, std::max<int64_t>(1, 4096 / tile_cols), [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t s = task / rows, row = task % rows;
      im2col_row(input + (t.n + s) * sample_numel, columns + task * tile_cols, row, t.oh_begin, t.oh_end, g);
    }
  });
}

// Adds the tile's column gradient onto the input gradient: one task per (sample, channel) plane, which sums
// its taps in a fixed order (deterministic).
template <typename acc_t, typename scalar_t>
void col2im_tile_add(const scalar_t* columns, acc_t* grad_input, const Tile& t, const ConvGeometry& g) {
  const int64_t tile_cols = t.cols(g.out_w), kernel_area = g.kernel_h * g.kernel_w;
  const int64_t plane_size = g.height * g.width;
  at::parallel_for(0, t.samples * g.channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {  // task = s * C + c: plane (t.n + s, c)
      const int64_t c = task % g.channels;
      acc_t* plane = grad_input + (t.n * g.channels + task) * plane_size;
      const scalar_t* sample_columns = columns + (task - c) * kernel_area * tile_cols;
      for (int64_t row = c * kernel_area; row < (c + 1) * kernel_area; ++row) {
        col2im_row_add(plane, sample_columns + row * tile_cols, row, t.oh_begin, t.oh_end, g);
      }
    }
  });
}

// The tile's block of a (N, rows, L) tensor as (samples*groups, rows/groups, tile cols): the operand of one
// batched GEMM over the tile's samples and groups.
at::Tensor tile_block(const at::Tensor& tensor, const Tile& t, int64_t groups, int64_t out_w) {
  const int64_t rows = tensor.numel() / (tensor.size(0) * tensor.size(2));
  return tensor.narrow(0, t.n, t.samples)
      .view({t.samples * groups, rows / groups, tensor.size(2)})
      .narrow(2, t.oh_begin * out_w, t.cols(out_w));
}

// Buffer `index` of a thread's tiles as the contiguous (samples*groups, K, tile cols) batch that im2col_tile
// and col2im_tile_add index (the last tile of a sample or of the batch may be smaller than the others).
at::Tensor tile_columns(const at::Tensor& thread_tiles, int64_t index, const Tile& t, const TiledProblem& p) {
  const int64_t numel = t.samples * p.g.column_rows() * t.cols(p.g.out_w);
  return thread_tiles.narrow(0, index * p.tile_numel(), numel)
      .view({t.samples * p.groups, p.group_rows, t.cols(p.g.out_w)});
}

// `buffers` tiles of columns per thread (none for a pointwise forward).
at::Tensor allocate_tiles(const TiledProblem& p, int64_t buffers, const at::Tensor& like) {
  const int64_t numel = p.tile_numel() * buffers;
  record_workspace_bytes(p.threads * numel * like.element_size());
  return at::empty({p.threads, numel}, like.options());
}

// `tensor` (groups, a, b) repeated for each sample of a tile: (samples_per_tile*groups, a, b), the batched
// GEMM's operand (a few copies of the weight or bias: small next to the columns).
at::Tensor repeat_per_sample(const at::Tensor& tensor, const TiledProblem& p) {
  return tensor.unsqueeze(0).expand({p.samples_per_tile, -1, -1, -1})
      .reshape({p.samples_per_tile * tensor.size(0), tensor.size(1), tensor.size(2)});
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
  if (use_depthwise_path(input, weight, groups)) {
    return conv2d_forward_depthwise(input, weight, bias, make_geometry(input, weight, stride, padding, dilation));
  }
  const TiledProblem p = make_tiled_problem(input, weight, stride, padding, dilation, groups, 1);
  const ConvGeometry& g = p.g;
  at::Tensor output = at::empty({g.batch, p.out_channels, g.out_h, g.out_w}, input.options());
  if (output.numel() == 0) return output;
  const at::Tensor weights = repeat_per_sample(weight.view({groups, p.group_out_channels, p.group_rows}), p);
  const std::optional<at::Tensor> biases = bias
      ? std::optional<at::Tensor>(repeat_per_sample(bias->view({groups, p.group_out_channels, 1}), p))
      : std::nullopt;
  const at::Tensor tiles = allocate_tiles(p, p.pointwise ? 0 : 1, input);
  const at::Tensor output_3d = output.view({g.batch, p.out_channels, g.out_plane()});
  const at::Tensor input_3d = input.view({g.batch, g.channels, g.height * g.width});

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "conv2d_forward_tiled", [&] {
    for_each_tile(p, [&](const Tile& t, int64_t thread) {
      at::Tensor columns;
      if (p.pointwise) {  // the input is its own column matrix
        columns = tile_block(input_3d, t, groups, g.out_w);
      } else {
        columns = tile_columns(tiles[thread], 0, t, p);
        im2col_tile(input.const_data_ptr<scalar_t>(), columns.mutable_data_ptr<scalar_t>(), t, g);
      }
      // (samples*g, O/g, K) @ (samples*g, K, tile) -> the output tile, in place; the bias is the beta term.
      const int64_t batch = t.samples * groups;
      at::Tensor out = tile_block(output_3d, t, groups, g.out_w);
      if (biases) {
        at::baddbmm_out(out, biases->narrow(0, 0, batch), weights.narrow(0, 0, batch), columns);
      } else {
        at::bmm_out(out, weights.narrow(0, 0, batch), columns);
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
  const at::AutoDispatchBelowADInplaceOrView below_autograd;  // as in the forward
  const at::Tensor grad_output = grad_output_arg.contiguous();
  const at::Tensor input = input_arg.contiguous();
  const at::Tensor weight = weight_arg.contiguous();
  const bool need_input = output_mask[0], need_weight = output_mask[1], need_bias = output_mask[2];
  auto unused = [&] { return unrequested_output(input); };
  if (use_depthwise_path(input, weight, groups)) {
    at::Tensor grad_input = need_input ? at::empty_like(input) : unused();
    at::Tensor grad_weight = need_weight ? at::empty_like(weight) : unused();
    conv2d_backward_depthwise(grad_output, input, weight, make_geometry(input, weight, stride, padding, dilation),
                              need_input ? grad_input : at::Tensor(), need_weight ? grad_weight : at::Tensor());
    return {grad_input, grad_weight, need_bias ? bias_gradient(grad_output) : unused()};
  }
  const TiledProblem p = make_tiled_problem(input, weight, stride, padding, dilation, groups,
                                            int64_t(need_input) + int64_t(need_weight));
  const ConvGeometry& g = p.g;
  // Tile buffers: the columns for dw (none when pointwise: the input is its own columns), then dcols for dx.
  const int64_t columns_buffers = need_weight && !p.pointwise ? 1 : 0;
  const auto accumulate_dtype = at::toOpMathType(input.scalar_type());
  const bool accumulate_in_place = accumulate_dtype == input.scalar_type();

  // dx accumulates tile by tile; the half types sum in float32 and are rounded once at the end.
  at::Tensor grad_input_acc = need_input ? at::zeros(input.sizes(), input.options().dtype(accumulate_dtype)) : unused();
  // dw: one partial sum per thread, added in thread order at the end (deterministic for a thread count).
  at::Tensor grad_weight_partials = need_weight
      ? at::zeros({p.threads, groups, p.group_out_channels, p.group_rows}, weight.options().dtype(accumulate_dtype))
      : unused();
  if ((need_input || need_weight) && grad_output.numel() > 0) {
    const at::Tensor weights_t =
        repeat_per_sample(weight.view({groups, p.group_out_channels, p.group_rows}), p).transpose(1, 2);
    const at::Tensor tiles = allocate_tiles(p, columns_buffers + int64_t(need_input), input);
    const at::Tensor grad_output_3d = grad_output.view({g.batch, p.out_channels, g.out_plane()});
    const at::Tensor input_3d = input.view({g.batch, g.channels, g.height * g.width});
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "conv2d_backward_tiled", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      for_each_tile(p, [&](const Tile& t, int64_t thread) {
        const at::Tensor dy = tile_block(grad_output_3d, t, groups, g.out_w);  // (samples*g, O/g, tile)
        if (need_weight) {  // dw += dy . cols^T per sample and group, summed over the tile's samples
          at::Tensor columns;
          if (p.pointwise) {
            columns = tile_block(input_3d, t, groups, g.out_w);
          } else {
            columns = tile_columns(tiles[thread], 0, t, p);
            im2col_tile(input.const_data_ptr<scalar_t>(), columns.mutable_data_ptr<scalar_t>(), t, g);
          }
          at::Tensor partial = grad_weight_partials[thread];
          if (t.samples == 1 && accumulate_in_place) {
            partial.baddbmm_(dy, columns.transpose(1, 2));
          } else {
            partial.add_(at::bmm(dy, columns.transpose(1, 2))
                             .view({t.samples, groups, p.group_out_channels, p.group_rows})
                             .sum(0));
          }
        }
        if (need_input) {  // dcols = W^T . dy per sample and group, then col2im adds the tile onto dx
          at::Tensor grad_columns = tile_columns(tiles[thread], columns_buffers, t, p);
          at::bmm_out(grad_columns, weights_t.narrow(0, 0, t.samples * groups), dy);
          col2im_tile_add(grad_columns.const_data_ptr<scalar_t>(), grad_input_acc.mutable_data_ptr<acc_t>(), t, g);
        }
      });
    });
  }
  at::Tensor grad_input = need_input ? grad_input_acc.to(input.scalar_type()) : unused();
  at::Tensor grad_weight =
      need_weight ? grad_weight_partials.sum(0).view(weight.sizes()).to(weight.scalar_type()) : unused();
  at::Tensor grad_bias = need_bias ? bias_gradient(grad_output) : unused();
  return {grad_input, grad_weight, grad_bias};
}

}  // namespace conv_ext::cpu
