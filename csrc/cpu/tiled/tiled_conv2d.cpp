// The tiled path: the convolution in tiles whose columns stay in the cache between im2col and the GEMM, for every
// dtype and every problem (the kernel table's last entry in each pass). A tile is a block of whole samples (small
// images) or a band of output rows of one sample (large images). Tiles run in parallel over the batch (each GEMM
// single-threaded inside the parallel region) when the batch has at least as many samples as threads; otherwise
// one after another, with multi-threaded GEMMs and im2col/col2im parallel over rows/channels. No permutes: each
// tile's GEMMs (gemm.h: one per sample and group) write their blocks of the (N, O, L) output, and read their
// blocks of grad_output, in place.
//
// Memory: one tile of columns per thread (two in backward: columns and their gradient), bounded by the workspace limit;
// the tile shrinks to a single output row of one sample before the bound is exceeded.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>

#include "cpu/tiled/column_rows.h"
#include "cpu/tiled/gemm.h"
#include "cpu/tiled/tiled_conv2d.h"
#include "ops/conv2d_args.h"
#include "ops/settings.h"

namespace conv_ext::cpu {

namespace {

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

TiledProblem make_tiled_problem(const at::Tensor& input, const at::Tensor& weight, const ConvGeometry& geometry,
                                int64_t groups, int64_t buffers) {
  TiledProblem p{};
  p.g = geometry;
  const ConvGeometry& g = p.g;
  p.groups = groups;
  p.out_channels = weight.size(0);
  p.group_out_channels = p.out_channels / groups;
  p.group_rows = g.column_rows() / groups;
  p.pointwise = is_pointwise(g);
  // Parallel over samples needs a tile buffer per thread: only when the batch and the bound allow it.
  const int64_t row_bytes = g.column_rows() * g.out_w * input.element_size() * std::max<int64_t>(buffers, 1);
  const int64_t threads = at::get_num_threads();
  p.threads = g.batch >= threads && row_bytes * threads <= workspace_limit_bytes() ? threads : 1;
  const int64_t budget = std::min(kTileTargetBytes, workspace_limit_bytes() / p.threads);
  const int64_t out_h = std::max<int64_t>(g.out_h, 1);
  // Rows for kMinTileColumns, within the workspace bound.
  const int64_t by_columns = std::min((kMinTileColumns + g.out_w - 1) / std::max<int64_t>(g.out_w, 1),
                                      workspace_limit_bytes() / p.threads / std::max<int64_t>(row_bytes, 1));
  p.rows_per_tile = std::clamp<int64_t>(std::max(budget / std::max<int64_t>(row_bytes, 1), by_columns), 1, out_h);
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

// A thread's tile buffer `index`: (samples*groups, K, tile cols) contiguous, as im2col_tile and col2im_tile_add
// index it (the last tile of a sample or of the batch may be smaller than the others).
template <typename scalar_t>
scalar_t* tile_buffer(const at::Tensor& tiles, int64_t thread, int64_t index, const TiledProblem& p) {
  return tiles.mutable_data_ptr<scalar_t>() + thread * tiles.size(1) + index * p.tile_numel();
}

// `buffers` tiles of columns per thread (none for a pointwise forward).
at::Tensor allocate_tiles(const TiledProblem& p, int64_t buffers, const at::Tensor& like) {
  const int64_t numel = p.tile_numel() * buffers;
  record_workspace_bytes(p.threads * numel * like.element_size());
  return at::empty({p.threads, numel}, like.options());
}

// The GEMM operands of one (sample, group) of a tile, as strided matrices over the tensors' memory.
struct TileOperands {
  const TiledProblem& p;
  const Tile& t;

  // Rows [group * rows, (group + 1) * rows) of sample s of the tile in a (N, channels, L) tensor, restricted to
  // the tile's output positions: the tile's block of the output or of grad_output (rows = O/g), or, when
  // pointwise, of the input (its own columns, rows = C/g).
  template <typename T>
  StridedMatrix<T> plane_block(T* data, int64_t channels, int64_t rows, int64_t s, int64_t group) const {
    const int64_t plane = p.g.out_plane();
    return {data + ((t.n + s) * channels + group * rows) * plane + t.oh_begin * p.g.out_w, plane, 1};
  }
  // The (K, tile cols) columns of sample s and group `group` in a tile buffer.
  template <typename T>
  StridedMatrix<T> columns(T* buffer, int64_t s, int64_t group) const {
    const int64_t cols = t.cols(p.g.out_w);
    return {buffer + (s * p.groups + group) * p.group_rows * cols, cols, 1};
  }
  // The group's (O/g, K) block of the weight, or its transpose.
  template <typename T>
  StridedMatrix<const T> weight(const T* data, int64_t group, bool transposed) const {
    const T* block = data + group * p.group_out_channels * p.group_rows;
    return transposed ? StridedMatrix<const T>{block, 1, p.group_rows}
                      : StridedMatrix<const T>{block, p.group_rows, 1};
  }
};

template <typename T>
StridedMatrix<const T> as_const(StridedMatrix<T> matrix) {
  return {matrix.data, matrix.row_stride, matrix.col_stride};
}

template <typename T>
StridedMatrix<const T> transposed(StridedMatrix<T> matrix) {
  return {matrix.data, matrix.col_stride, matrix.row_stride};
}

}  // namespace

at::Tensor tiled_conv2d(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                        const ConvGeometry& geometry, int64_t groups) {
  const TiledProblem p = make_tiled_problem(input, weight, geometry, groups, 1);
  const ConvGeometry& g = p.g;
  at::Tensor output = at::empty({g.batch, p.out_channels, g.out_h, g.out_w}, input.options());
  if (output.numel() == 0) return output;
  const at::Tensor tiles = allocate_tiles(p, p.pointwise ? 0 : 1, input);

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "tiled_conv2d", [&] {
    const scalar_t* bias_data = bias ? bias->const_data_ptr<scalar_t>() : nullptr;
    for_each_tile(p, [&](const Tile& t, int64_t thread) {
      const TileOperands at_tile{p, t};
      scalar_t* buffer = p.pointwise ? nullptr : tile_buffer<scalar_t>(tiles, thread, 0, p);
      if (!p.pointwise) im2col_tile(input.const_data_ptr<scalar_t>(), buffer, t, g);
      // Per sample and group: (O/g, K) . (K, tile cols) -> the output tile, in place; the bias is the C term.
      for (int64_t s = 0; s < t.samples; ++s) {
        for (int64_t group = 0; group < groups; ++group) {
          const StridedMatrix<const scalar_t> columns = p.pointwise
              ? at_tile.plane_block(input.const_data_ptr<scalar_t>(), g.channels, p.group_rows, s, group)
              : as_const(at_tile.columns(buffer, s, group));
          const StridedMatrix<scalar_t> out = at_tile.plane_block(output.mutable_data_ptr<scalar_t>(),
                                                                  p.out_channels, p.group_out_channels, s, group);
          gemm(p.group_out_channels, t.cols(g.out_w), p.group_rows,
               at_tile.weight(weight.const_data_ptr<scalar_t>(), group, false), columns, out.data, out.row_stride,
               false, {bias_data ? bias_data + group * p.group_out_channels : nullptr, 1, 0});
        }
      }
    });
  });
  return output;
}

std::pair<at::Tensor, at::Tensor> tiled_conv2d_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                                        const at::Tensor& weight, const ConvGeometry& geometry,
                                                        int64_t groups, bool need_input, bool need_weight) {
  auto unused = [&] { return unrequested_output(input); };
  const TiledProblem p =
      make_tiled_problem(input, weight, geometry, groups, int64_t(need_input) + int64_t(need_weight));
  const ConvGeometry& g = p.g;
  // Tile buffers: the columns for dw (none when pointwise: the input is its own columns), then dcols for dx.
  const int64_t columns_buffers = need_weight && !p.pointwise ? 1 : 0;
  const auto accumulate_dtype = at::toOpMathType(input.scalar_type());

  // dx accumulates tile by tile; the half types sum in float32 and are rounded once at the end.
  at::Tensor grad_input_acc = need_input ? at::zeros(input.sizes(), input.options().dtype(accumulate_dtype)) : unused();
  // dw: one partial sum per thread, added in thread order at the end (deterministic for a thread count). Each
  // holds dw^T per group, (K, O/g): its GEMM reads the columns in place and packs only grad_output. On one thread
  // dw itself is the sum, (O/g, K) per group: adding one partial and transposing it took longer than the GEMM on a
  // small plane (MobileNetV2's 64->384 1x1 on 14 x 14 at batch 1: 26 us of 88, the GEMM 41).
  const bool transposed_partials = p.threads > 1;
  at::Tensor grad_weight_partials = need_weight
      ? at::zeros(transposed_partials ? at::IntArrayRef{p.threads, groups, p.group_rows, p.group_out_channels}
                                      : at::IntArrayRef{groups, p.group_out_channels, p.group_rows},
                  weight.options().dtype(accumulate_dtype))
      : unused();
  if ((need_input || need_weight) && grad_output.numel() > 0) {
    const at::Tensor tiles = allocate_tiles(p, columns_buffers + int64_t(need_input), input);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "tiled_conv2d_backward", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const scalar_t* weight_data = weight.const_data_ptr<scalar_t>();
      for_each_tile(p, [&](const Tile& t, int64_t thread) {
        const TileOperands at_tile{p, t};
        const int64_t cols = t.cols(g.out_w);
        scalar_t* columns_buffer = columns_buffers ? tile_buffer<scalar_t>(tiles, thread, 0, p) : nullptr;
        if (need_weight && !p.pointwise) im2col_tile(input.const_data_ptr<scalar_t>(), columns_buffer, t, g);
        scalar_t* grad_columns_buffer =
            need_input ? tile_buffer<scalar_t>(tiles, thread, columns_buffers, p) : nullptr;
        for (int64_t s = 0; s < t.samples; ++s) {
          for (int64_t group = 0; group < groups; ++group) {
            const StridedMatrix<const scalar_t> dy = at_tile.plane_block(
                grad_output.const_data_ptr<scalar_t>(), p.out_channels, p.group_out_channels, s, group);
            if (need_weight) {
              const StridedMatrix<const scalar_t> columns = p.pointwise
                  ? at_tile.plane_block(input.const_data_ptr<scalar_t>(), g.channels, p.group_rows, s, group)
                  : as_const(at_tile.columns(columns_buffer, s, group));
              acc_t* partial = grad_weight_partials.mutable_data_ptr<acc_t>() +
                               (thread * groups + group) * p.group_rows * p.group_out_channels;
              if (transposed_partials) {  // dw^T += cols . dy^T: (K, tile cols) . (tile cols, O/g)
                gemm(p.group_rows, p.group_out_channels, cols, columns, transposed(dy), partial,
                     p.group_out_channels, true);
              } else {  // dw += dy . cols^T: (O/g, tile cols) . (tile cols, K)
                gemm(p.group_out_channels, p.group_rows, cols, as_const(dy), transposed(columns), partial, p.group_rows,
                     true);
              }
            }
            if (need_input) {  // dcols = W^T . dy: (K, O/g) . (O/g, tile cols)
              const StridedMatrix<scalar_t> grad_columns = at_tile.columns(grad_columns_buffer, s, group);
              gemm(p.group_rows, cols, p.group_out_channels, at_tile.weight(weight_data, group, true), dy,
                   grad_columns.data, grad_columns.row_stride, false);
            }
          }
        }
        // col2im adds the tile's column gradient onto dx
        if (need_input) col2im_tile_add(grad_columns_buffer, grad_input_acc.mutable_data_ptr<acc_t>(), t, g);
      });
    });
  }
  at::Tensor grad_input = need_input ? grad_input_acc.to(input.scalar_type()) : unused();
  at::Tensor grad_weight = unused();
  if (need_weight) {
    grad_weight = transposed_partials ? grad_weight_partials.sum(0).transpose(1, 2).contiguous() : grad_weight_partials;
    grad_weight = grad_weight.view(weight.sizes()).to(weight.scalar_type());
  }
  return {grad_input, grad_weight};
}

}  // namespace conv_ext::cpu
