// The textbook path: the device-agnostic orchestration of the forward and backward passes: chunks of the batch,
// column workspace, GEMMs through ATen (MKL/OpenBLAS on CPU, cuBLAS on CUDA), bias and groups. The device supplies
// only the two column kernels (ColumnKernels).
#include "textbook/textbook_conv2d.h"

#include <ATen/OpMathType.h>

#include <algorithm>

#include "ops/conv2d_args.h"
#include "ops/settings.h"

namespace conv_ext {

namespace {

// Sizes of one problem, in the vocabulary of the design notes: K = (C/g)*kh*kw rows of a group's columns,
// L = Ho*Wo output positions per sample.
struct ConvProblem {
  ConvGeometry geometry;  // geometry.batch is set per chunk
  int64_t batch_size, groups, out_channels;
  int64_t group_in_rows;  // K
  int64_t group_out_channels;  // O/g

  int64_t column_bytes_per_sample(int64_t element_size) const {
    return geometry.column_rows() * geometry.out_plane() * element_size;
  }
};

ConvProblem make_problem(const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
                         at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  ConvProblem p{};
  p.geometry = make_geometry(input, weight, stride, padding, dilation);
  const ConvGeometry& g = p.geometry;
  p.batch_size = g.batch;
  p.groups = groups;
  p.out_channels = weight.size(0);
  p.group_in_rows = g.column_rows() / groups;
  p.group_out_channels = p.out_channels / groups;
  return p;
}

}  // namespace


namespace {

// Samples per chunk such that `buffers` column-sized buffers of one chunk fit in the workspace bound; never
// fewer than one sample.
int64_t samples_per_chunk(const ConvProblem& p, int64_t element_size, int64_t buffers) {
  const int64_t per_sample = std::max<int64_t>(1, p.column_bytes_per_sample(element_size) * buffers);
  return std::clamp<int64_t>(workspace_limit_bytes() / per_sample, 1, std::max<int64_t>(1, p.batch_size));
}

// A flat buffer for `buffers` column matrices of `chunk` samples, recorded for the peak-workspace report.
at::Tensor allocate_workspace(const ConvProblem& p, int64_t chunk, int64_t buffers, const at::TensorOptions& options) {
  const int64_t numel = p.geometry.column_rows() * chunk * p.geometry.out_plane() * buffers;
  record_workspace_bytes(numel * static_cast<int64_t>(c10::elementSize(c10::typeMetaToScalarType(options.dtype()))));
  return at::empty({numel}, options);
}

// The first n-sample column matrix in a flat workspace, as (C*kh*kw, n*L).
at::Tensor columns_view(const at::Tensor& workspace, const ConvGeometry& g, int64_t offset = 0) {
  return workspace.narrow(0, offset, g.column_numel()).view({g.column_rows(), g.column_cols()});
}

}  // namespace

at::Tensor textbook_conv2d(
    const at::Tensor& input_arg, const at::Tensor& weight_arg, const std::optional<at::Tensor>& bias,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
    const ColumnKernels& kernels) {
  const auto output_shape = check_conv2d_args(input_arg, weight_arg, bias, stride, padding, dilation, groups);
  if (lacks_input_channels(input_arg)) return conv2d_without_input_channels(input_arg, output_shape);
  // The ATen calls below are our implementation, not part of the autograd graph (and out= ops refuse
  // inputs that require grad, as in a double backward).
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const at::Tensor input = input_arg.contiguous();
  const at::Tensor weight = weight_arg.contiguous();
  ConvProblem p = make_problem(input, weight, stride, padding, dilation, groups);
  ConvGeometry& g = p.geometry;
  const int64_t L = g.out_plane();
  at::Tensor output = at::empty({p.batch_size, p.out_channels, g.out_h, g.out_w}, input.options());
  if (output.numel() == 0) return output;

  const at::Tensor weight_groups = weight.view({groups, p.group_out_channels, p.group_in_rows});
  const std::optional<at::Tensor> bias_groups =
      bias ? std::optional<at::Tensor>(bias->view({groups, p.group_out_channels, 1})) : std::nullopt;
  const int64_t chunk = samples_per_chunk(p, input.element_size(), 1);
  const at::Tensor workspace = allocate_workspace(p, chunk, 1, input.options());

  for (int64_t start = 0; start < p.batch_size; start += chunk) {
    g.batch = std::min(chunk, p.batch_size - start);
    at::Tensor columns = columns_view(workspace, g);
    kernels.im2col(input.narrow(0, start, g.batch), columns, g);
    // (g, O/g, K) @ (g, K, n*L) -> (g, O/g, n*L), bias fused into the GEMM as its beta term.
    const at::Tensor columns_groups = columns.view({groups, p.group_in_rows, g.column_cols()});
    const at::Tensor result = bias_groups ? at::baddbmm(*bias_groups, weight_groups, columns_groups)
                                          : at::bmm(weight_groups, columns_groups);
    // The GEMM's columns run over (sample, position); the output wants (sample, channel, position).
    output.narrow(0, start, g.batch)
        .view({g.batch, groups, p.group_out_channels, L})
        .copy_(result.view({groups, p.group_out_channels, g.batch, L}).permute({2, 0, 1, 3}));
  }
  return output;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> textbook_conv2d_backward(
    const at::Tensor& grad_output_arg, const at::Tensor& input_arg, const at::Tensor& weight_arg,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
    std::array<bool, 3> output_mask, const ColumnKernels& kernels) {
  check_conv2d_backward_args(grad_output_arg, input_arg, weight_arg, stride, padding, dilation, groups);
  if (lacks_input_channels(input_arg)) {
    return conv2d_backward_without_input_channels(input_arg, weight_arg, output_mask);
  }
  // The ATen calls below are our implementation, not part of the autograd graph (and out= ops refuse
  // inputs that require grad, as in a double backward).
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const at::Tensor grad_output = grad_output_arg.contiguous();
  const at::Tensor input = input_arg.contiguous();
  const at::Tensor weight = weight_arg.contiguous();
  ConvProblem p = make_problem(input, weight, stride, padding, dilation, groups);
  ConvGeometry& g = p.geometry;
  const int64_t L = g.out_plane();
  const bool need_input = output_mask[0], need_weight = output_mask[1], need_bias = output_mask[2];
  auto unused = [&] { return unrequested_output(input); };

  at::Tensor grad_input = need_input ? at::empty_like(input) : unused();
  // dw accumulates over the batch in the accumulation type (float32 for the half types); the first chunk
  // writes it (no zero fill: one kernel launch less, which is what a small problem on a GPU pays for).
  const auto accumulate_dtype = at::toOpMathType(input.scalar_type());
  at::Tensor grad_weight_groups = need_weight
      ? at::empty({groups, p.group_out_channels, p.group_in_rows}, weight.options().dtype(accumulate_dtype))
      : unused();
  if ((need_input || need_weight) && p.batch_size > 0 && grad_output.numel() > 0) {
    const at::Tensor weight_groups_t =
        weight.view({groups, p.group_out_channels, p.group_in_rows}).transpose(1, 2);
    // Live column-sized buffers per chunk: the columns (for dw) and the column gradient (for dx).
    const int64_t buffers = int64_t(need_input) + int64_t(need_weight);
    const int64_t chunk = samples_per_chunk(p, input.element_size(), buffers);
    const at::Tensor workspace = allocate_workspace(p, chunk, buffers, input.options());

    for (int64_t start = 0; start < p.batch_size; start += chunk) {
      g.batch = std::min(chunk, p.batch_size - start);
      // dy as (g, O/g, n*L): the GEMMs' layout, columns over (sample, position).
      const at::Tensor grad_output_groups = grad_output.narrow(0, start, g.batch)
                                                .view({g.batch, groups, p.group_out_channels, L})
                                                .permute({1, 2, 0, 3})
                                                .reshape({groups, p.group_out_channels, g.column_cols()});
      if (need_weight) {
        at::Tensor columns = columns_view(workspace, g);
        kernels.im2col(input.narrow(0, start, g.batch), columns, g);
        // dw += dy . cols^T: (g, O/g, n*L) @ (g, n*L, K)
        const at::Tensor columns_t = columns.view({groups, p.group_in_rows, g.column_cols()}).transpose(1, 2);
        if (accumulate_dtype == input.scalar_type()) {
          grad_weight_groups.baddbmm_(grad_output_groups, columns_t, /*beta=*/start == 0 ? 0 : 1);
        } else if (start == 0) {
          grad_weight_groups.copy_(at::bmm(grad_output_groups, columns_t));
        } else {
          grad_weight_groups.add_(at::bmm(grad_output_groups, columns_t));
        }
      }
      if (need_input) {
        // dcols = w^T . dy: (g, K, O/g) @ (g, O/g, n*L), then col2im sums it back onto the input.
        const at::Tensor grad_columns = columns_view(workspace, g, need_weight ? g.column_numel() : 0);
        at::Tensor grad_columns_groups = grad_columns.view({groups, p.group_in_rows, g.column_cols()});
        at::bmm_out(grad_columns_groups, weight_groups_t, grad_output_groups);
        at::Tensor grad_input_chunk = grad_input.narrow(0, start, g.batch);
        kernels.col2im(grad_columns, grad_input_chunk, g);
      }
    }
  } else {  // nothing to sum over: zero gradients
    if (need_input) grad_input.zero_();
    if (need_weight) grad_weight_groups.zero_();
  }
  at::Tensor grad_weight = need_weight ? grad_weight_groups.view(weight.sizes()).to(weight.scalar_type()) : unused();
  at::Tensor grad_bias = need_bias ? bias_gradient(grad_output) : unused();
  return {grad_input, grad_weight, grad_bias};
}

}  // namespace conv_ext
