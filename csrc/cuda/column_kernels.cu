// The CUDA column kernels: grid-stride loops over the per-element bodies of im2col.h, the same code the
// reference host loops run (csrc/textbook/host_reference_kernels.cpp), so the CPU tests exercise the math that runs
// here. im2col: one thread per (input channel, column), writing that column's kh*kw taps. col2im: the gather,
// one thread per input element, which sums every column entry that read it; no two threads write the same place,
// so it needs no atomics and its result does not depend on the launch (deterministic). The math runs in int32_t
// where the chunk allows it and in int64_t otherwise (a column matrix may pass 2^31 entries; with_index_type
// picks); the grid-stride loop counts in int64_t either way. Kernels run on the current stream of the input's
// device.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>

#include "textbook/textbook_conv2d.h"

namespace conv_ext {

namespace {

constexpr int kThreadsPerBlock = 256;
// Resident blocks per SM times this many waves bounds the grid; the grid-stride loop covers the rest.
constexpr int64_t kWavesPerGrid = 4;

// Blocks for `numel` elements: enough for one element per thread, capped at a few waves of the device (and far
// below the 2^31 - 1 limit of gridDim.x).
unsigned int grid_size(int64_t numel) {
  const cudaDeviceProp* properties = at::cuda::getCurrentDeviceProperties();
  const int64_t blocks_per_sm = std::max<int64_t>(1, properties->maxThreadsPerMultiProcessor / kThreadsPerBlock);
  const int64_t max_blocks = std::max<int64_t>(1, properties->multiProcessorCount * blocks_per_sm * kWavesPerGrid);
  const int64_t needed = (numel + kThreadsPerBlock - 1) / kThreadsPerBlock;
  return static_cast<unsigned int>(std::clamp<int64_t>(needed, 1, max_blocks));
}

// The first index of this thread and the stride of the grid-stride loop, in 64 bits (blockIdx.x * blockDim.x
// alone would be computed in 32 bits).
__device__ __forceinline__ int64_t first_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

template <typename scalar_t, typename index_t>
__global__ void __launch_bounds__(kThreadsPerBlock)
    im2col_kernel(const scalar_t* __restrict__ input, scalar_t* __restrict__ columns,
                  const BasicConvGeometry<index_t> geometry, const int64_t numel) {
  for (int64_t index = first_index(); index < numel; index += grid_stride()) {
    im2col_element(static_cast<index_t>(index), input, columns, geometry);
  }
}

template <typename scalar_t, typename index_t>
__global__ void __launch_bounds__(kThreadsPerBlock)
    col2im_gather_kernel(const scalar_t* __restrict__ columns, scalar_t* __restrict__ grad_input,
                         const BasicConvGeometry<index_t> geometry, const int64_t numel) {
  using acc_t = at::opmath_type<scalar_t>;
  for (int64_t index = first_index(); index < numel; index += grid_stride()) {
    col2im_gather_element<scalar_t, acc_t>(static_cast<index_t>(index), columns, grad_input, geometry);
  }
}

void check_cuda_contiguous(const char* launcher, const char* name, const at::Tensor& tensor, int64_t numel,
                           const at::Tensor& like) {
  TORCH_CHECK(tensor.is_cuda() && tensor.device() == like.device(), launcher, ": ", name, " must be on ",
              like.device(), ", got ", tensor.device());
  TORCH_CHECK(tensor.is_contiguous(), launcher, ": ", name, " must be contiguous");
  TORCH_CHECK(tensor.numel() == numel, launcher, ": ", name, " has ", tensor.numel(), " elements, expected ",
              numel);
  TORCH_CHECK(tensor.scalar_type() == like.scalar_type(), launcher, ": ", name, " dtype ", tensor.scalar_type(),
              " does not match ", like.scalar_type());
}

void im2col_cuda(const at::Tensor& input, const at::Tensor& columns, const ConvGeometry& geometry) {
  const int64_t numel = geometry.channel_columns();  // im2col_element's work items
  check_cuda_contiguous("im2col_cuda", "input", input, geometry.input_numel(), input);
  check_cuda_contiguous("im2col_cuda", "columns", columns, geometry.column_numel(), input);
  if (numel == 0) return;
  const c10::cuda::CUDAGuard device_guard(input.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream(input.get_device());
  const unsigned int blocks = grid_size(numel);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "im2col_cuda", [&] {
    with_index_type(geometry, [&](const auto& indexed) {
      using index_t = decltype(indexed.batch);
      im2col_kernel<scalar_t, index_t><<<blocks, kThreadsPerBlock, 0, stream>>>(
          input.const_data_ptr<scalar_t>(), columns.mutable_data_ptr<scalar_t>(), indexed, numel);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
}

void col2im_cuda(const at::Tensor& columns, const at::Tensor& grad_input, const ConvGeometry& geometry) {
  const int64_t numel = geometry.input_numel();
  check_cuda_contiguous("col2im_cuda", "columns", columns, geometry.column_numel(), columns);
  check_cuda_contiguous("col2im_cuda", "grad_input", grad_input, numel, columns);
  if (numel == 0) return;
  const c10::cuda::CUDAGuard device_guard(columns.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream(columns.get_device());
  const unsigned int blocks = grid_size(numel);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, columns.scalar_type(), "col2im_cuda", [&] {
    with_index_type(geometry, [&](const auto& indexed) {
      using index_t = decltype(indexed.batch);
      col2im_gather_kernel<scalar_t, index_t><<<blocks, kThreadsPerBlock, 0, stream>>>(
          columns.const_data_ptr<scalar_t>(), grad_input.mutable_data_ptr<scalar_t>(), indexed, numel);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
}

}  // namespace

const ColumnKernels& cuda_kernels() {
  static const ColumnKernels kernels{&im2col_cuda, &col2im_cuda};
  return kernels;
}

}  // namespace conv_ext
