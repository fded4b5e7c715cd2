// The kernel table: which CPU kernel runs the forward, dx and dw of a convolution. One ordered list per pass; the
// first entry whose rule accepts the problem runs (as in oneDNN's cpu_convolution_list.cpp), and the tiled path,
// which runs every dtype and every problem, closes each list. Every rule and threshold stands here, beside the
// kernel it guards, with its reason; the kernel families keep only what they need to run.
#include "cpu/kernel_table.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <vector>

#include "cpu/channels_last/nhwc_depthwise.h"
#include "cpu/channels_last/nhwc_direct.h"
#include "cpu/grad_input/grad_input_as_conv2d.h"
#include "cpu/implicit/implicit_conv2d.h"
#include "cpu/simd/simd_isa.h"
#include "cpu/tiled/tiled_conv2d.h"
#include "cpu/valid_range.h"

namespace conv_ext::cpu {

namespace {

struct Problem {
  at::ScalarType dtype;
  ConvGeometry g;
  int64_t groups, out_channels;
  at::MemoryFormat format;
  int64_t group_in, group_out;  // C/g, O/g
};

// ---- The conditions the rules share --------------------------------------------------------------------------

// Our SIMD kernels: float32 only, built for x86-64 (simd_isa() is none elsewhere), all switched off by the cap
// none.
bool simd_float32(const Problem& p) { return p.dtype == at::kFloat && simd_kernels_enabled(); }

// Whether the tiled path's GEMM on im2col's columns (ATen's: MKL) beats the column-free kernels: where a group has
// 64 output channels or more. Writing a column element and reading it back costs about what 1/(O/g) of the GEMM's
// multiply-adds on it cost, so the columns' price falls as O/g grows, while the column-free kernels, which keep no
// block of the weight in cache, slow down as the weight grows. Measured per pass on the 110 distinct
// convolutions of ResNet-18/50, VGG-11, MobileNetV2, EfficientNet-B0, ConvNeXt-T and the seed CNN at batch 1 and 8
// (AVX-512, Intel Xeon, 2 threads): with this rule the forward's summed time is within 0.3% of the fastest kernel's
// per layer (997 against 995 ms; the previous rules: 2124 ms, 24x on 512->512 3x3 at 7x7, batch 1), dx's within
// 2% (1226 against 1206 ms; previously 2277). Below 64 (seed-conv1/2, strided-5x5, grouped) the column-free kernels
// win. The same threshold had measured best on AVX2 (a Zen 3: vgg-like's forward 17.2 against 21.9 ms).
bool columns_pay(const Problem& p) { return p.group_out >= 64; }

// The kernels with the output channels in the vector lanes (channel_lanes/), for a convolution whose groups have
// `group_out` output channels: below 16 most of each vector's lanes would be idle.
bool channel_lanes(const Problem& p, int64_t group_out) { return simd_float32(p) && group_out >= 16; }

// The implicit GEMM on `geometry` (the problem's, or one of dx as a convolution of dy): it runs stride_w 1 or 2.
// Its panels must fill 3/4 of their vectors' lanes (flat panels always do; row panels of Wo outputs may not): a
// threshold, not a measurement: below it, much of each vector's work would be wasted.
bool implicit_takes(const Problem& p, const ConvGeometry& geometry) {
  if (!simd_float32(p) || geometry.stride_w > 2) return false;
  const int64_t width = geometry.out_w;
  return implicit_flat_panels(geometry) || 4 * width >= 3 * 16 * ((width + 15) / 16);
}

// Whether the exact-taps kernels save enough over the implicit GEMM on `geometry`: the implicit GEMM's
// multiply-adds per input and output channel (its lanes x the taps, as if no panel skipped one) against the taps
// inside the image. Over 15% of the implicit GEMM's work on the padding and idle lanes (seed-conv2: 21%, forward
// 2.7 -> 2.4 ms on 2 threads) goes to the exact taps; below that the implicit GEMM's denser inner loop wins
// (resnet-3x3: 2%).
bool exact_taps_save(const ConvGeometry& g) {
  auto axis_taps = [](int64_t outputs, int64_t stride, int64_t pad, int64_t length, int64_t dilation,
                      int64_t kernel) {
    int64_t taps = 0;
    for (int64_t o = 0; o < outputs; ++o) {
      const ValidRange t = valid_taps(o * stride - pad, length, dilation, kernel);
      taps += t.end - t.begin;
    }
    return taps;
  };
  const int64_t implicit = implicit_conv2d_lanes(g) * g.kernel_h * g.kernel_w;
  const int64_t exact = axis_taps(g.out_h, g.stride_h, g.pad_h, g.height, g.dilation_h, g.kernel_h) *
                        axis_taps(g.out_w, g.stride_w, g.pad_w, g.width, g.dilation_w, g.kernel_w);
  return 100 * exact < 85 * implicit;
}

// A depthwise convolution (groups == in_channels, one input channel per group) in a dtype of the scalar depthwise
// loops (float32, float64). Its GEMMs are (O/g x kh*kw) . (kh*kw x L), a handful of taps per output: writing the
// columns out costs more than the product. The tiled path took 3.4x to 5x the loops' time on the depthwise suite
// shape (float32 without the SIMD kernels: forward 3.14 against 0.69 ms, backward 6.81 against 2.01; float64:
// 5.31 against 1.06, 13.5 against 2.69) and 1.5x on the dw of a stride-2 depthwise 56x56 (5.19 against 3.52 ms
// with dx; AVX-512, Intel Xeon, 2 threads, alternated, medians of 7).
bool depthwise(const Problem& p) {
  return p.groups > 1 && p.group_in == 1 && (p.dtype == at::kFloat || p.dtype == at::kDouble);
}

// The SIMD depthwise forward (stride_w 1 or 2). As a GEMM a depthwise plane has one row, a 1 x 16 block in the
// implicit GEMM; the depthwise kernel keeps rows of the plane in registers (the depthwise suite shape on a Zen 3,
// AVX2: forward 0.54 against 1.23-1.40 ms on the implicit GEMM, dx 0.59 against 1.14-1.49).
bool depthwise_simd(const Problem& p) { return depthwise(p) && simd_float32(p) && p.g.stride_w <= 2; }

bool unit_stride(const ConvGeometry& g) { return g.stride_h == 1 && g.stride_w == 1; }
// A kernel at least 3 wide and 3 high: its im2col copies overlapping windows (a 2x2 stride-2 downsampler's does not).
bool kernel_3x3_or_larger(const ConvGeometry& g) { return g.kernel_h >= 3 && g.kernel_w >= 3; }

// dx for stride 1 is one convolution of dy (transposed_geometry): its kernel must take that geometry too. The
// tiled dx is a GEMM of depth O/g and col2im: columns_pay holds for it as for the forward.
bool dx_as_conv2d_on_implicit(const Problem& p) {
  return !columns_pay(p) && unit_stride(p.g) && implicit_takes(p, p.g) &&
         implicit_takes(p, transposed_geometry(p.g, p.out_channels));
}

// dw on the SIMD kernels. On AVX-512 the exact-taps dw beats the tiled path's GEMM on most layers with >= 64
// output channels per group too (it reduces over the output positions, where the GEMM's depth would be; e.g.
// 512->512 3x3 on 14x14 at batch 1: 6.9 against 14.3 ms); on AVX2, where a register block holds a quarter of
// the sums, the tiled path measured faster there (a Zen 3: vgg-like's dw 17.0 against 23.8 ms).
bool simd_dw(const Problem& p) { return simd_float32(p) && !(simd_isa() == SimdIsa::avx2 && columns_pay(p)); }

// The implicit dw: the implicit GEMM's dot products along the outputs, for stride_w 1.
bool implicit_dw(const Problem& p) { return simd_dw(p) && implicit_takes(p, p.g) && p.g.stride_w == 1; }

// The exact-taps dw measured faster than the implicit one on every suite shape with 8 input channels per group or
// more; below that its register blocks are short (seed-conv1, one input channel: one sum in registers, 1.7 ms
// against the implicit dw's 0.45), and the implicit dw takes it where it can.
bool exact_taps_dw(const Problem& p) {
  return simd_dw(p) && channel_lanes(p, p.group_out) && (p.group_in >= 8 || !implicit_dw(p));
}

// What the GEMMs on NHWC rows take (tiled_nhwc's rules below): groups 1 (a group's channels would be a strided
// slice of every row) and the dtypes of ATen's float GEMMs without a wider sum (float32, float64).
bool nhwc_gemm_runs(const Problem& p) { return p.groups == 1 && (p.dtype == at::kFloat || p.dtype == at::kDouble); }
// A narrow layer: its GEMM dominates (columns_pay) on an output plane under 128 positions.
bool narrow_plane(const Problem& p) { return columns_pay(p) && p.g.out_plane() < 128; }

// The tiled path on channels_last memory (channels_last/nhwc_conv2d.cpp): its im2col copies runs of C channels and
// its GEMMs take output positions as rows, (N*Ho*Wo, O), across samples. Where the op's tensors are channels_last
// it reads and writes them as they are (the tiled path would take input and output through a layout change, a
// copy each). Where they are contiguous, it runs where the GEMM dominates (columns_pay), the output plane has
// under 128 positions and the batch several samples: the tiled path's GEMMs are per sample, one narrow GEMM per
// thread, while these run over the positions of several samples, worth the two copies. On 7 x 7 planes (AVX-512,
// Intel Xeon, 2 threads, ms, tiled against tiled_nhwc): 512->512 3x3 forward 10.1 -> 7.8 at batch 8, 37.2 -> 27.7
// at 32, dx 11.0 -> 8.0 and 40.3 -> 34.5; 2048->512 1x1 forward 4.1 -> 3.4 at batch 8, dx 5.2 -> 3.3 (at batch 32
// dx 20.1 -> 21.9, the one loss); on 14 x 14 the two were even (256->256 3x3 forward 7.2 against 8.0 at batch 8,
// 5.4 against 4.6 at batch 5).
bool tiled_nhwc(const Problem& p) {
  return (p.format == at::MemoryFormat::ChannelsLast || (narrow_plane(p) && p.g.batch > 1)) && nhwc_gemm_runs(p);
}

// Depthwise on channels_last memory with the channels in the lanes (channels_last/nhwc_depthwise.cpp): no layout
// round trip, any stride, every pass. One output channel per input channel. Contiguous problems too where the
// output rows are under 8 wide: the NCHW kernel's vectors run along a row, 16 columns, so a 7-wide row fills under
// half of them, and the two layout changes cost less (x torch's time, AVX-512, Intel Xeon, 2 threads, batch 1 / 8
// / 32, forward, depthwise_simd against depthwise_nhwc and the copies: ConvNeXt's 768 channels 7x7 on 7x7 1.52 /
// 3.87 / 3.99 against 0.97 / 1.39 / 1.42; EfficientNet's 1152 5x5 on 7x7 1.23 / 2.69 / 2.79 against 1.02 / 1.50 /
// 1.60, its 672 5x5 stride 2 on 14x14 1.22 / 1.96 / 2.38 against 1.09 / 1.40 / 1.53; on 14x14 planes no better).
// What the NHWC depthwise kernels run: float32 on the SIMD kernels, one output channel per input channel.
bool depthwise_nhwc_runs(const Problem& p) { return simd_float32(p) && depthwise(p) && p.group_out == 1; }
bool depthwise_nhwc(const Problem& p) {
  return (p.format == at::MemoryFormat::ChannelsLast || p.g.out_w < 8) && depthwise_nhwc_runs(p);
}

// dx and dw of a contiguous strided depthwise layer, through the layout changes: the NCHW kernels for them are dx by
// phases (GEMMs one deep) and the scalar dw loops (x torch's time, AMD EPYC Zen 4, 2 threads, the NCHW kernel against
// depthwise_nhwc and the copies). dx at any size, its copies dy's and dx's, not the input's (AVX-512, batch 1 / 8 /
// 32: MobileNetV2's 96 channels 3x3 stride 2 on 112x112 2.99 / 1.99 / 1.77 against 2.33 / 1.39 / 1.22, 144 on
// 56x56 at 8 / 32 1.68 / 1.64 against 1.56 / 1.45, 192 on 28x28 at 8 2.75 against 1.85, EfficientNet's 240 on 28x28
// at 8 2.97 against 1.88; AVX2, torch on AVX2 too: 96 on 112x112 4.09 / 2.60 / 2.60 against 3.81 / 2.08 / 1.87, mean
// over the networks' strided depthwise layers 1.81 against 1.70). dw under 32 MiB of input: 96 on 112x112 at batch 1
// 2.62 against 1.50, 192 on 28x28 at batch 8 / 32 3.92 / 2.21 against 1.55 / 1.39, 240 on 28x28 at 8 / 32 3.57 /
// 1.59 against 1.20 / 1.30, 144 5x5 on 56x56 at 8 0.33 against 0.16; beyond it not (96 on 112x112 at batch 8, 37
// MiB, 0.37 against 1.06; 144 on 56x56 at 32 0.35 against 1.09).
bool strided_depthwise_through_nhwc(const Problem& p, int64_t max_input_bytes) {
  return !unit_stride(p.g) && p.g.input_numel() * int64_t{sizeof(float)} <= max_input_bytes && depthwise_nhwc_runs(p);
}
// dx of a contiguous depthwise layer at stride 2, dilation 1, on its NCHW kernel (depthwise_grad_input_stride2_simd:
// even and odd columns summed from runs of dy's rows, interleaved at the store), not through the layout changes of
// dy and dx (x torch's time, AMD EPYC Zen 4, 2 threads, batch 1 / 8 / 32, against depthwise_nhwc; AVX-512:
// MobileNetV2's 96 channels on 112x112 0.91 / 0.40 / 0.43 against 2.71 / 1.21 / 1.01, 144 on 56x56 0.76 / 0.46 /
// 0.32 against 1.23 / 1.45 / 1.14, EfficientNet's 144 5x5 on 56x56 0.97 / 0.64 / 0.51 against 1.29 / 1.52 / 1.21,
// its 240 on 28x28 0.62 / 0.85 / 0.32 against 0.83 / 2.21 / 1.18, mean over the networks' strided depthwise layers
// 0.73 against 1.31; AVX2, torch on AVX2 too: 96 on 112x112 1.46 / 0.55 / 0.51 against 3.95 / 2.02 / 1.84, mean 0.83
// against 1.74). Output rows under 8 wide (dx rows under 16) keep the NHWC kernel, where a chunk of 32 columns is
// under half filled (MobileNetV2's 576 channels on 14x14 at batch 8, AVX2: 1.80 against 1.02).
bool depthwise_stride2_dx(const Problem& p) {
  return depthwise_simd(p) && p.group_out == 1 && p.g.stride_h == 2 && p.g.stride_w == 2 && p.g.dilation_h == 1 &&
         p.g.dilation_w == 1;
}
bool depthwise_nhwc_dx(const Problem& p) {
  return depthwise_nhwc(p) ||
         (strided_depthwise_through_nhwc(p, std::numeric_limits<int64_t>::max()) && !depthwise_stride2_dx(p));
}
// dw likewise, its kernel 3, 5 or 7 wide and up to 7 tall (depthwise_grad_weight_stride2_simd: runs of dy's rows
// times runs of the input rows' even or odd columns, a task per channel), not through the layout changes nor on the
// scalar loops beyond 32 MiB (x torch's time, AMD EPYC Zen 4, 2 threads, batch 1 / 8 / 32, against the table's
// choice before; AVX-512: MobileNetV2's 96 channels on 112x112 1.14 / 0.69 / 0.61 against 1.63 / 1.19 / 1.08, 144
// on 56x56 0.94 / 1.03 / 0.72 against 1.06 / 1.50 / 1.14, 192 on 28x28 0.86 / 1.57 / 0.86 against 1.00 / 1.15 /
// 1.15, EfficientNet's 240 on 28x28 0.76 / 1.34 / 0.87 against 1.05 / 1.31 / 1.26, mean 0.78 against 1.01; AVX2,
// torch on AVX2 too: 96 channels 1.53 / 1.05 / 1.06 against 3.89 / 1.36 / 1.22, mean 1.38 against 1.80). Output
// rows under 8 wide keep the NHWC kernel (MobileNetV2's 576 channels on 14x14 at batch 8: 2.91 against 1.07).
bool depthwise_stride2_dw(const Problem& p) {
  return depthwise_stride2_dx(p) && (p.g.kernel_w == 3 || p.g.kernel_w == 5 || p.g.kernel_w == 7) &&
         p.g.kernel_h <= 7;
}
bool depthwise_nhwc_dw(const Problem& p) {
  return depthwise_nhwc(p) ||
         (strided_depthwise_through_nhwc(p, (int64_t{32} << 20) - 1) && !depthwise_stride2_dw(p));
}

// The forward of a contiguous depthwise layer: where the sliding block runs, by blocks of 16 channels (8 on AVX2) of
// one sample transposed in L2 (nhwc_depthwise_simd.inc; no layout change of the tensors), for kernels 5 and 7 wide or
// output rows under 8 wide: there no lane idles on a row's end nor sums a tap in the padding, as the NCHW kernel's do
// (x torch's time, AVX-512, Intel Xeon, 2 threads, batch 1 / 8 / 32, against depthwise_simd: ConvNeXt's 7x7 on 14 x 14
// 0.63 / 0.84 / 0.91 against 1.02 / 1.65 / 1.72, on 56 x 56 0.67 / 0.83 / 0.46 against 1.17 / 1.61 / 0.66;
// EfficientNet's 5x5 on 14 x 14 0.58 / 0.78 / 1.11 against 0.83 / 1.12 / 1.23, stride 2 0.49 / 0.65 / 0.75 against 1.17
// / 1.93 / 2.39; MobileNetV2's 3x3 on 7 x 7 0.42 / 0.71 / 0.78 against 0.60 / 1.30 / 1.37; its 3x3 at stride 2 on 14 x
// 14, rows of 7, 0.34 / 0.50 / 0.59 against 0.54 / 0.92 / 1.06). Its 3x3 layers on rows >= 8 wide were level or slower,
// at stride 1 (on 14 x 14 0.44 / 0.69 / 0.76 against 0.44 / 0.63 / 0.69) and 2 (192 channels on 28 x 28 at batch 1 / 32
// 0.37 / 0.65 against 0.33 / 0.58): those keep depthwise_simd. Likewise on AVX2, with its sliding block of 8 pixels too
// (AMD EPYC Zen 4, torch on AVX2 too, the networks' contiguous 3x3 layers at batch 1 / 8 / 32, channel blocks against
// the table's choice: 0.96 against 0.89 on the mean; MobileNetV2's 144 channels on 56x56 at 8 0.98 against 0.56, 576 on
// 14x14 at 32 1.05 against 0.75). On AVX2 layers of stride_w 2 at batch > 1 too, where the NCHW kernel's loads of every
// other column are masked loads (AMD EPYC Zen 4, torch on AVX2 too, batch 8 / 32, channel blocks against
// depthwise_simd: MobileNetV2's 96 channels 3x3 stride 2 on 112x112 0.68 / 0.84 against 1.52 / 1.91, 144 on 56x56 0.75
// / 0.70 against 1.12 / 1.01, 192 on 28x28 1.03 / 0.80 against 1.27 / 0.97, EfficientNet's 240 on 28x28 1.30 / 0.75
// against 1.24 / 0.94; at batch 1 they lost, 96 channels 1.35 against 1.17, 240 0.80 against 0.54, and at stride 1, 144
// on 56x56 at 8 1.20 against 0.87).
bool avx2_stride_w2_batch(const Problem& p) {
  return simd_isa() == SimdIsa::avx2 && p.g.stride_w > 1 && p.g.batch > 1;
}
bool depthwise_nhwc_forward(const Problem& p) {
  if (p.format == at::MemoryFormat::ChannelsLast) return depthwise_nhwc(p);
  return depthwise_nhwc_runs(p) && depthwise_slides(p.g) &&
         (p.g.kernel_w >= 5 || p.g.out_w < 8 || avx2_stride_w2_batch(p));
}

// A pointwise pass on channels_last memory is one GEMM on the NHWC rows (x . w^T, dy . w, dy^T . x), with neither
// columns nor a layout change: ahead of the kernels that would take dy and x through one (MobileNetV2's 32->16 1x1
// at 112 x 112 in channels_last: fwd+bwd 1.9x-3.0x torch's time with the implicit dx and the NCHW tiled dw). An
// input of one pixel a plane (squeeze-and-excitation's 1x1 layers) has the same memory in either format, so it
// takes this path whatever its format, where the kernels for planes paid their set-up on a GEMV (EfficientNet's
// 1152->48 at batch 1, us: dx 110 with exact taps, dw 78 on the tiled path, against torch's 17 and 33).
bool pointwise_nhwc(const Problem& p) {
  const bool one_pixel = p.g.height == 1 && p.g.width == 1;
  return (p.format == at::MemoryFormat::ChannelsLast || one_pixel) && is_pointwise(p.g) && nhwc_gemm_runs(p);
}

// The direct kernel on NHWC memory (channels_last/nhwc_direct.cpp): no columns; register blocks of 6 output
// positions (any, across rows and samples) x 64 output channels (AVX2: 6 x 16). It runs the convolution of
// `geometry` (the problem's, or dx's as a convolution of dy) with `outs` output channels, groups 1, where:
// - outs >= 32: under 32 half the lanes of a block idle or more (the seed's 16->32 5x5 at 14x14, batch 32: dx,
//   16 output channels, 1.26 against the exact-taps kernel's 0.81 ms);
// - the kernel is not 1x1, but where direct_one_by_one holds (with its own bounds on outs): a 1x1 GEMM reads the
//   input rows in place, with no columns to save (64->128 1x1 stride 2 at 56x56, batch 8, before the chunk-outer
//   task order: 1.24x torch's time against tiled_nhwc's 1.06x; with it 0.98x against 1.14x);
// - the weight it packs per call is under 2^20 floats, or there are >= 256 output positions to share the packing
//   (512->512 3x3 on 7x7, channels_last: at batch 1 forward 1.17x torch against tiled_nhwc's 1.16x and the NCHW
//   tiled path's 0.80x, dx 1.25x against 0.91x; at batch 8 forward 0.92x against 1.03x, dx 0.93x against 0.95x).
// It reads the input unpadded and skips the taps in the padding, so stride and padding are free: channels_last
// 3x3 layers at stride 2 measured 0.96x-1.14x torch's time against tiled_nhwc's 1.10x-1.39x (ResNet's 64->128 at
// 56x56, 128->256 at 28x28, 256->512 at 14x14, batch 1 and 8; AVX-512, Intel Xeon, 2 threads).
// A weight of 2^20 floats or more (512->512 3x3 has 2.4M, 256->256 0.6M), and under 256 output positions (all
// samples): the direct kernels' forward and dx pack the weight per call, which pays only over many positions; their
// dw sums into it, where the tiled path's GEMM does better over many positions.
bool large_weight(const ConvGeometry& g, int64_t outs) {
  return outs * g.channels * g.kernel_h * g.kernel_w >= (int64_t{1} << 20);
}
bool few_positions(const ConvGeometry& g) { return g.batch * g.out_h * g.out_w < 256; }
// A layer whose GEMM dominates (columns_pay) over few output positions: the tiled path's GEMMs there are only as
// deep as a plane; one GEMM over every position on NHWC memory does better (the dw rules below).
bool wide_on_few_positions(const Problem& p) { return columns_pay(p) && few_positions(p.g); }

// What every direct kernel (forward, dx, dw) needs: float32 on the SIMD kernels, groups 1, a kernel larger than 1x1
// (on AVX2 see avx2_direct_pays).
bool direct_runs(const Problem& p) {
  return simd_float32(p) && p.groups == 1 && p.g.kernel_h * p.g.kernel_w > 1;
}

// On AVX2 a register block is 6 x 16 (12 FMAs to 6 broadcasts and 2 loads a step, where AVX-512's 6 x 64 has 24
// to 6 and 4), and it beats the tiled path's GEMM (also on AVX2) only on channels_last tensors with few output
// channels (x torch's time, both on AVX2, Intel Xeon, 2 threads, batch 1 / 8, direct against tiled_nhwc): forward
// 64->64 3x3 on 56x56 1.14 / 1.15 against 1.24 / 1.26, the 7x7 stem 1.13 / 1.20 against 1.51 / 1.59, but 64->128
// on 112x112 1.09 / 1.27 against 1.07 / 1.11; dx (outs = the layer's input channels) 64->64 1.16 / 1.19 against
// 1.70 / 1.59, 128->128 on 28x28 1.01 / 1.06 against 1.32 / 1.33, 256->256 on 56x56 1.03 / 1.11 against 1.10 /
// 1.02. Its dw lost on most layers (256->256 on 14x14 1.27 / 1.19 against 0.85 / 0.98): AVX-512 only. The 3-channel
// stems are its too: with the chunk-outer task order (nhwc_direct_simd.inc) a chunk's 16-channel blocks no longer
// walk the output again each (VGG's 3->64 3x3 stem, 27 steps, batch 1 / 3 / 8: 1.24 / 1.05 / 1.05 against 1.90 /
// 1.24 / 1.27; before that order, at batch 8, 60 ms against tiled_nhwc's 40). Since each block sums the whole
// depth (no slices stored and reloaded), the forward takes any number of output channels where the kernel is 3x3 or
// larger (channels_last, batch 1 / 8, direct against tiled_nhwc: ResNet's 128->128 on 28x28 0.97 / 1.04 against
// 1.17 / 1.12, 256->256 on 14x14 1.01 / 1.04 against 1.11 / 1.13, 512->512 on 7x7 at 8 0.91 against 1.02, VGG's
// 512->512 on 28x28 0.96 / 1.02 against 1.06 / 1.10, ConvNeXt's 4x4 stride 4 stem 0.85 / 1.00 against 1.31 / 1.48;
// lost at batch 8 on VGG's largest planes: 256->256 on 56x56 1.07 against 0.93, 64->128 on 112x112 1.12 against
// 1.09); ConvNeXt's 2x2 stride 2 downsamplers, im2col's copy without overlap, stay on the GEMM (batch 8: 96->192
// 1.19 against 1.06, 192->384 1.10 against 0.95). dx likewise takes any number of input channels (channels_last,
// batch 1 / 8: ResNet's 256->256 on 14x14 0.95 / 1.03 against 1.09 / 1.23, VGG's 256->256 on 56x56 0.98 / 1.02
// against 1.11 / 1.11, 512->512 on 28x28 1.01 / 1.01 against 1.08 / 1.04; it had been held to <= 128). All that on
// an Intel CPU; elsewhere, where MKL's GEMM runs slower code, on contiguous tensors too at stride 1 from 16 input
// channels, through a layout change (AMD EPYC Zen 4, torch on AVX2 too, x torch's time, batch 1 / 8, direct against
// the tiled path, forward: ResNet's 64->64 on 56x56 1.87 / 1.10 against 3.19 / 1.36, 128->128 on 28x28 0.93 / 1.06
// against 1.70 / 1.23, VGG's 256->256 on 56x56 1.08 / 1.17 against 1.69 / 1.18, 512->512 on 14x14 at 8 0.92 against
// 1.18; dx: 64->64 0.94 / 1.06 against 1.39 / 1.50, VGG's 512->512 on 28x28 1.04 / 1.13 against 1.48 / 1.62). At
// stride 2 and on the 3-channel stems it was mixed (ResNet's 7x7 stem at 8 1.38 against 1.20, 64->128 3x3 stride 2
// 1.20 against 1.08; VGG's 3->64 at 8 0.90 against 0.28).
bool avx2_direct_pays(const Problem& p, int64_t outs, int64_t max_outs) {
  const bool contiguous_pays = !intel_cpu() && unit_stride(p.g) && p.g.channels >= 16;
  return simd_isa() != SimdIsa::avx2 ||
         ((p.format == at::MemoryFormat::ChannelsLast || contiguous_pays) && outs <= max_outs);
}
constexpr int64_t kAnyOutputs = std::numeric_limits<int64_t>::max();

// On AVX2 off Intel CPUs, the direct forward on contiguous tensors at batch 1 pays at any stride and depth, where the
// tiled path runs one GEMM a plane on MKL's AVX2 code for other vendors (AMD EPYC Zen 4, torch on AVX2 too, x torch's
// time, batch 1, direct against the tiled path: ResNet's 7x7 stem 1.35-1.41 against 1.81-4.59, VGG's 3->64 3x3
// 1.58-1.73 against 3.41-4.26, ResNet's 64->128 3x3 stride 2 on 56x56 0.94-1.00 against 1.14-1.52, 128->256 on 28x28
// 0.93-0.99 against 1.09-1.27, ResNet-50's 128->128 stride 2 on 56x56 1.01-1.03 against 1.58-1.59, 256->256 on 28x28
// 1.06-1.10 against 1.31-1.35); from batch 2 the tiled path did as well or better on those (the 7x7 stem at 4 1.48
// against 1.34, VGG's 3->64 at 4 1.51 against 1.13, 128->128 stride 2 at 2 1.41 against 1.21). Not where the windows
// do not overlap (im2col a plain copy): ConvNeXt's 4x4 stride-4 stem at batch 1 1.92-2.35 against 1.10-1.19.
bool avx2_contiguous_batch1_forward(const Problem& p) {
  return simd_isa() == SimdIsa::avx2 && !intel_cpu() && p.g.batch == 1 && kernel_3x3_or_larger(p.g) &&
         p.g.stride_w < p.g.kernel_w;
}

// A 1x1 convolution on channels_last tensors, on AVX-512, where the direct kernel's blocks fill all their lanes (a
// multiple of 64 output channels), up to 128 of them or no more than the depth (a reduction), the depth is >= 64 and
// there are >= 512 output positions: there the GEMM on the NHWC rows (ATen's, MKL) packs the input per call for a
// narrow product, and the direct kernel, which broadcasts the rows in place, does better (x torch's time, Intel Xeon, 2
// threads, forward, batch 1 / 8 / 32, direct against the GEMM): ResNet-50's 256->64 on 56x56 0.99 / 1.07 / 1.20 against
// 1.21 / 1.36 / 1.34, 64->64 0.80 / 1.02 / 1.07 against 0.89 / 1.27 / 1.34, 512->128 on 28x28 1.09 / 1.08 / 1.18
// against 1.03 / 1.17 / 1.28, MobileNetV2's 384->64 on 14x14 (batch 8 / 32) 0.96 / 1.04 against 1.12 / 1.28,
// ResNet-18's 64->128 stride 2 0.72 / 0.98 / 1.00 against 0.70 / 1.14 / 1.14; dx of 64->256 (64 outputs) 1.03 / 1.14 /
// 1.26 against 1.14 / 1.28 / 1.18. Elsewhere the GEMM won: a part-filled block (MobileNetV2's 576->96 1.41 against 1.13
// at batch 8; EfficientNet's 480->80 1.47 against 1.09), more output channels than the depth beyond 128 (ResNet-50's
// 256->1024 on 14x14 1.08 / 1.10 against 1.00 / 0.99 at batch 8 / 32, MobileNetV2's 320->1280 on 7x7 at 32 1.11 against
// 1.00), few positions (batch 1 on 14x14: 384->64 0.80 against 0.60) or a shallow depth (16->96 on 112x112 at batch 8:
// 2.5 against 1.9). The reductions to 192-512 outputs, measured with the kernel summing the whole depth a block (batch
// 8 / 32): ResNet-50's 512->256 on 28x28 1.03 / 1.05 against 1.13 / 1.14 (batch 1: 1.07 against 1.03), 1024->256 on
// 14x14 1.09 / 1.06 against 1.13 / 1.16, 1024->512 1.00 / 1.00 against 1.06 / 1.08, 2048->512 on 7x7 at 32 0.91 against
// 0.99, EfficientNet's 1152->192 1.06 against 1.09 at 32; as dx (the convolution of dy, O deep), the expansions:
// ResNet-50's 256->1024 1.04 / 1.08 against 1.11 / 1.16, MobileNetV2's 320->1280 at 32 0.93 against 0.98.
//
// That is MKL on an Intel CPU (intel_cpu()). On other CPUs MKL runs slower code, and the direct kernel, its last
// block as narrow as its channels need (nhwc_direct_simd.inc), beats it on every 1x1 layer of the networks with >= 512
// output positions and >= 16 channels each way (AMD EPYC Zen 4, 2 threads, x torch's time, batch 8 / 32, direct
// against the GEMM; forward: ResNet-50's 256->1024 on 14x14 0.97 / 1.04 against 1.10 / 1.38, 64->256 on 56x56 at 8
// 1.01 against 1.26, 1024->2048 stride 2 0.80 / 0.89 against 1.00 / 1.36; MobileNetV2's 32->16 on 112x112 0.94 / 0.84
// against 1.40 / 1.14, 576->96 on 14x14 1.02 / 0.97 against 1.20 / 1.21, 96->24 on 56x56 1.12 / 1.13 against 1.32 /
// 1.37; EfficientNet's 480->80 0.99 / 1.02 against 1.13 / 1.38, 240->40 on 28x28 1.01 / 0.88 against 1.23 / 1.34; dx:
// MobileNetV2's 384->64 1.29 / 1.14 against 2.25 / 2.28, EfficientNet's 240->40 1.08 / 1.11 against 1.23 / 1.32); with
// fewer positions it lost there too where the pass reduces (batch 1 on 7x7: EfficientNet's 1152->192 forward 1.55
// against 1.00, 960->160 1.42 against 0.80), but won where it expands (more outputs than its depth), in dx at any
// batch (the convolution of dy, x torch's time, batch 1 / 8, contiguous: EfficientNet's 1152->192 on 7x7 1.00 / 0.93
// against 1.21 / 1.16, 960->160 0.94 / 0.97 against 1.11 / 1.47, ResNet-50's 1024->256 on 14x14 at 1 0.89 against
// 1.14; channels_last: 960->160 0.92 / 0.79 against 1.45 / 1.36) and in the forward but the contiguous one at batch 1,
// where the tiled path runs one GEMM over the plane (batch 8, contiguous / channels_last: MobileNetV2's 160->960 on 7x7
// 0.96 / 0.77 against 1.46 / 1.30, 320->1280 0.97 / 0.80 against 1.43 / 1.17, EfficientNet's 192->1152 0.94 / 0.83
// against 1.48 / 1.29, ResNet-50's 512->2048 1.09 / 0.91 against 1.32 / 1.10; channels_last at batch 1: 112->672 on
// 14x14 0.98 against 1.71, 256->1024 1.12 against 1.64; contiguous at batch 1 it lost, 160->960 1.43 against 1.04).
// On AVX2, off Intel CPUs, the 1x1 layers on channels_last tensors too, any number of channels each way (AMD EPYC
// Zen 4, 2 threads, torch on AVX2 too, x torch's time, mean over the networks' 1x1 layers, batch 1 / 8 / 32, direct
// against the GEMM on the NHWC rows: forward 0.96 / 1.01 / 1.00 against 0.98 / 1.21 / 1.22, dx 1.02 / 1.03 / 1.00
// against 1.08 / 1.24 / 1.29; ResNet-50's 64->256 on 56x56 at 8 0.93 against 1.33, MobileNetV2's 16->96 on 112x112
// at 32 1.05 against 1.97; at batch 1 some lost: MobileNetV2's 32->16 on 112x112 1.23 against 0.92, 24->144 on
// 56x56 1.09 against 0.94). On contiguous tensors, through the layout change, it lost (forward at batch 8 / 32 1.11
// / 1.25 against 1.00 / 1.05).
bool avx2_one_by_one(const Problem& p) {
  return simd_isa() == SimdIsa::avx2 && !intel_cpu() && p.format == at::MemoryFormat::ChannelsLast &&
         p.g.kernel_h == 1 && p.g.kernel_w == 1;
}

bool direct_one_by_one(const Problem& p, const ConvGeometry& geometry, int64_t outs) {
  const bool channels_last = p.format == at::MemoryFormat::ChannelsLast;
  if ((!channels_last && intel_cpu()) || !simd_float32(p) || (simd_isa() != SimdIsa::avx512 && !avx2_one_by_one(p)) ||
      p.groups != 1 || geometry.kernel_h != 1 || geometry.kernel_w != 1) {
    return false;
  }
  if (geometry.batch * geometry.out_h * geometry.out_w < 512) {
    // An expanding pass has the layer's outputs only in the forward (dx's outputs are the layer's input channels).
    const bool expands = outs > geometry.channels, forward = outs == p.out_channels;
    if (intel_cpu() || !expands || (!channels_last && forward && geometry.batch == 1)) return false;
  }
  // Off Intel CPUs on contiguous tensors too, through a layout change (see direct_nhwc and direct_nhwc_dx).
  if (!intel_cpu()) {
    const int64_t least = channels_last ? 16 : 64;
    return outs >= least && geometry.channels >= least;
  }
  return outs % 64 == 0 && (outs <= 128 || outs <= geometry.channels) && geometry.channels >= 64;
}

// `any_weight`: a large weight on few positions too.
bool direct_nhwc_takes(const Problem& p, const ConvGeometry& geometry, int64_t outs, bool any_weight) {
  return ((direct_runs(p) && outs >= 32) || direct_one_by_one(p, geometry, outs)) &&
         (any_weight || !large_weight(geometry, outs) || !few_positions(geometry));
}

// The forward on channels_last tensors; on contiguous ones too where the tiled path would run (>= 64 output
// channels) at stride 1: the kernel's NHWC copy of the input is the layout change, and each chunk of the output is
// transposed into the planes. It beats im2col + GEMM there (contiguous, ms, against the tiled path: 64->64 3x3 on
// 56x56 0.96 against 1.16 at batch 1, 7.8 against 8.4 at batch 8; 128->128 on 28x28 0.93 against 1.13, 7.1
// against 7.9; VGG's 64->128 on 112x112 6.9 against 7.9, 71.7 against 76.0), from 256 output channels only with
// >= 256 output positions (x torch's time, against the tiled path: 256->256 on 14x14 1.04 against 1.22 at batch
// 8, 1.18 against 1.05 at batch 1; 512->512 on 14x14 1.07 against 1.17 at batch 8, 1.31 against 1.09 at batch 1),
// nor under 16 input channels (VGG's 3->64 stem at batch 1: 2.5 against 0.83, most of its time in the transposes of
// its 64 output planes). At stride 2 the input it copies is 4x the output's positions: there only from 256 output
// channels and a kernel 3x3 or larger (with each block summing the whole depth; x torch's time, batch 8 / 32, against
// the tiled path: ResNet's 128->256 on 28x28 1.10 / 1.13 against 1.16 / 1.22, 256->512 on 14x14 1.02 / 1.00 against
// 1.17 / 1.19, ResNet-50's 256->256 on 28x28 1.09 / 1.06 against 1.21 / 1.19; with 128 output channels it lost at
// batch 32, 128->128 on 56x56 1.15 against 0.88, and ConvNeXt's 2x2 downsamplers, im2col's copy without overlap,
// lost too: 96->192 on 56x56 1.26 / 1.57 against 1.05 / 0.97).
//
// All of that on an Intel CPU, against MKL's GEMM at its best. Elsewhere the direct forward beat the tiled path on
// contiguous tensors wherever it runs with >= 64 output channels, at any stride and depth (AMD EPYC Zen 4, 2 threads, x
// torch's time, batch 1 / 8, direct against the tiled path: ResNet's 7x7 stem 1.13 / 0.96 against 2.07 / 1.33,
// 64->128 3x3 stride 2 on 56x56 0.93 / 0.95 against 1.47 / 1.34, 256->256 on 14x14 at 1 1.09 against 1.98,
// ResNet-50's 128->128 stride 2 on 56x56 0.98 / 0.83 against 1.91 / 1.35, VGG's 3->64 stem at 1 1.03 against 3.83,
// ConvNeXt's 4x4 stride 4 stem 1.23 / 1.18 against 2.74 / 1.70, its 2x2 downsamplers 96->192 0.88 / 0.93 against
// 1.43 / 0.99; 1x1 layers (direct_one_by_one): ResNet-50's 256->1024 on 14x14 at 8 0.96 against 1.25, 512->256 on
// 28x28 0.96 / 0.92 against 1.08 / 1.06, 256->64 on 56x56 at 1 1.02 against 1.39), but 1x1 layers 64 deep only at
// batch 1 (64->64 on 56x56 0.73 / 1.26 against 1.23 / 1.10, 64->128 stride 2 0.58 / 0.95 against 1.26 / 0.76): there
// from 128 input channels, or from 64 on output planes under 256 positions, where the tiled path's GEMMs are a plane
// narrow (batch 8 / 32, against the tiled path: MobileNetV2's 64->384 on 14x14 1.05 / 1.03 against 1.23 / 1.33,
// 96->576 1.15 / 0.96 against 1.24 / 1.14, EfficientNet's 80->480 1.05 / 0.94 against 1.16 / 1.13, 112->672 1.02 /
// 0.99 against 1.14 / 1.20).
//
// A weight of 2^20 floats or more on few positions: on an Intel CPU it stays on the tiled path (called alone and
// repeated the direct forward had beaten it, ResNet's 512->512 3x3 on 7x7 at batch 1 1.30 against 1.93, but in the
// networks benchmark's interleaved rounds it read 1.37-1.82 against 1.01-1.75, with the weight then packed element
// by element). Elsewhere, on AVX-512, the direct forward takes it, its weight packed by transposes in registers
// (nhwc_direct_pack_tile); x torch's time, AMD EPYC Zen 4, 2 threads, interleaved rounds, batch 1 / 3, direct
// against the table's choice without it (the tiled path, or tiled_nhwc): contiguous 512->512 on 7x7 1.00 / 1.00
// against 1.29 / 1.47, 256->512 stride 2 on 14x14 0.98 / 1.12 against 1.40 / 1.61, VGG's 512->512 on 14x14 at 1
// 0.96 against 1.19; channels_last 0.74 / 0.91 against 0.92 / 1.14 on 7x7, 0.84 / 0.91 against 0.92 / 1.18 stride
// 2 on 14x14; whole ResNet-18 converted, contiguous at batch 1, 0.97 against 1.04. On AVX2 its 6 x 16 block lost
// there (torch on AVX2 too, channels_last at batch 1: 512->512 on 7x7 1.10 against 0.79, 256->512 stride 2 1.19
// against 0.73).
bool large_weight_direct() { return !intel_cpu() && simd_isa() == SimdIsa::avx512; }

bool direct_nhwc(const Problem& p) {
  const bool wide_strided = p.out_channels >= 256 && kernel_3x3_or_larger(p.g);
  const bool contiguous_wins =
      intel_cpu() ? columns_pay(p) && (unit_stride(p.g) || wide_strided) && p.g.channels >= 16 &&
                        (p.out_channels < 256 || !few_positions(p.g))
                  : columns_pay(p) && (p.g.kernel_h * p.g.kernel_w > 1 || p.g.channels >= 128 ||
                                     (p.g.channels >= 64 && p.g.out_h * p.g.out_w < 256));
  return (p.format == at::MemoryFormat::ChannelsLast || contiguous_wins) &&
         direct_nhwc_takes(p, p.g, p.out_channels, large_weight_direct()) &&
         (avx2_direct_pays(p, p.out_channels, kernel_3x3_or_larger(p.g) || avx2_one_by_one(p) ? kAnyOutputs : 64) ||
          avx2_contiguous_batch1_forward(p));
}

// dx for stride 1 as the convolution of dy (C output channels, O input channels). On contiguous tensors too where
// the tiled path would run (>= 64 output channels) and dy has no more channels than dx (O <= C): dy's NHWC copy is
// the layout change and each chunk of dx is transposed into the planes. There it beats the tiled dx, whose GEMM is
// only O deep (x torch's time, AVX-512, Intel Xeon, 2 threads, batch 1 / 8 / 32, against the tiled path: ResNet's
// 64->64 on 56x56 0.84 / 0.97 / 1.03 against 1.10 / 1.10 / 1.09, 128->128 on 28x28 0.92 / 1.06 / 1.01 against
// 1.19 / 1.29 / 1.22, 256->256 on 14x14 1.00 / 1.01 / 1.00 against 1.14 / 1.33 / 1.28, 512->512 on 7x7 (batch 8 /
// 32) 1.13 / 1.00 against 1.32 / 1.28; VGG's 256->256 on 56x56 0.96 / 0.96 / 0.88 against 1.04 / 1.00 / 0.91). With
// O > C the copy of the larger dy costs more and the deeper GEMM does better (VGG's 64->128 on 112x112 1.15 / 1.16 /
// 1.00 against 1.14 / 1.13 / 0.87; 128->256 on 56x56 0.97 / 0.99 / 0.94 against 1.01 / 0.98 / 0.85). That is on an
// Intel CPU, MKL at its best; elsewhere the direct dx won with O > C too (AMD EPYC Zen 4, batch 1 / 8: VGG's 64->128
// 0.98 / 0.92 against 1.15 / 1.25, 128->256 0.99 / 0.89 against 1.46 / 1.38, 256->512 on 28x28 1.04 / 0.89 against
// 1.47 / 1.75), and on the 1x1 layers with >= 64 channels each way (direct_one_by_one; ResNet-50's 64->64 on 56x56
// 0.67 / 1.32 against 1.59 / 2.08, 512->128 on 28x28 1.02 / 0.99 against 1.89 / 1.53, MobileNetV2's 384->64 on
// 14x14 at 8 1.13 against 1.71).
//
// At stride > 1 (dilation 1) dx is taken by phases (grad_input_as_conv2d.h), each the kernel on dy writing every
// s-th pixel of dx: off Intel CPUs, where the GEMM on NHWC rows is MKL's slower code, for kernels larger than 1x1
// (AMD EPYC Zen 4, 2 threads, x torch's time, batch 1 / 8 / 32, phases against the table's choice before them,
// tiled_nhwc on channels_last, the tiled path on contiguous tensors or tiled_nhwc from batch 8 on 14 x 14: ResNet-50's
// 128->128 3x3 on 56x56 channels_last 1.08 / 0.95 / 0.95 against 2.76 / 2.59 / 2.56, contiguous 0.74 / 0.79 / 0.77
// against 1.28 / 1.04 / 0.95; 256->256 on 28x28 0.97 / 0.89 / 0.92 against 1.40 / 1.45 / 1.50; 512->512 on 14x14
// at 8 / 32 0.81 / 0.79 against 1.21 / 1.40; ResNet's 64->128 on 56x56 1.08 / 0.94 / 1.19 against 2.13 / 2.25 /
// 2.27, 128->256 on 28x28 1.06 / 0.86 / 0.97 against 1.94 / 1.75 / 1.97; ConvNeXt's 2x2 downsamplers 96->192 on
// 56x56 1.08 / 0.96 / 1.06 against 1.30 / 1.29 / 1.30, 384->768 on 14x14 at 8 / 32 0.90 / 0.93 against 1.18 / 1.25).
// A strided 1x1's dx is mostly zeros (3/4 at stride 2), which the phases write apart: there the GEMM did as well or
// better (ResNet's 64->128 1x1 stride 2 on 56x56, channels_last, 1.31 / 1.77 / 1.45 against 1.03 / 1.07 / 1.12).
// On AVX2 (channels_last only: avx2_direct_pays) for kernels 3x3 or larger (torch on AVX2 too, against tiled_nhwc:
// 128->128 on 56x56 1.05 / 1.06 / 1.13 against 1.32 / 1.33 / 1.22, 64->128 1.07 / 1.08 / 1.20 against 1.20 / 1.31 /
// 1.36, 256->256 on 28x28 1.07 / 0.93 / 1.01 against 1.10 / 1.19 / 1.26); the 2x2 downsamplers, whose phases are
// 1x1, lost at batch 32 (96->192 1.50 against 1.24, 192->384 1.23 against 1.13).
bool dx_by_phases(const Problem& p) {
  const bool taps_pay = simd_isa() == SimdIsa::avx2 ? kernel_3x3_or_larger(p.g) : p.g.kernel_h * p.g.kernel_w > 1;
  return !intel_cpu() && p.g.dilation_h == 1 && p.g.dilation_w == 1 && taps_pay;
}
// Off Intel CPUs dx takes a weight of 2^20 floats or more on few positions too, but by phases at batch 1 (x torch's
// time, batch 1 / 3, channels_last / contiguous, direct against the table's choice without it: ResNet's 512->512 3x3
// on 7x7 1.05 / 0.71 and 0.71 / 0.89 against 1.20 / 1.18 and 1.02 / 1.79, VGG's on 14x14 1.01 / 0.92 and 0.94 / 1.00
// against 1.70 / 1.47 and 1.11 / 1.67; AVX2 likewise, 1.12 / 0.77 and 0.74 / 0.71 against 1.15 / 1.10 and 0.90 /
// 1.30 on 7x7; ResNet-50's 512->512 stride 2 on 14x14 at batch 3 0.76 / 1.02 against 1.15 / 1.30, at batch 1
// contiguous 1.31 against 1.19; its 2048->512 1x1 on 7x7 at batch 1 / 3 1.07 / 0.97 and 0.98 / 0.94 against 1.39 /
// 1.08 and 1.67 / 1.11). In the networks benchmark's interleaved rounds, level: ResNet-18's batch-1 fwd+bwd total,
// contiguous, 0.94 / 0.94 / 1.00 in three runs against 0.95 / 0.94 / 0.93.
bool direct_nhwc_dx(const Problem& p) {
  const ConvGeometry dy_conv = transposed_geometry(p.g, p.out_channels);
  const bool any_weight = !intel_cpu() && (unit_stride(p.g) || p.g.batch > 1);
  const bool contiguous_wins = columns_pay(p) && (p.out_channels <= p.g.channels || !intel_cpu());
  return (p.format == at::MemoryFormat::ChannelsLast || contiguous_wins) && (unit_stride(p.g) || dx_by_phases(p)) &&
         direct_nhwc_takes(p, dy_conv, p.g.channels, any_weight) && avx2_direct_pays(p, p.g.channels, kAnyOutputs);
}

// dw without columns on channels_last tensors (channels_last/nhwc_direct_grad_weight.cpp), AVX-512: the input
// channels in the lanes (so >= 32 of them), a block of 6 output channels in the rows, summed over the positions
// whose taps lie in the input. Against the tiled path's dy^T . columns on NHWC memory (x torch's time, AVX-512,
// Intel Xeon, 2 threads, batch 1 / 8): 64->64 3x3 on 56x56 1.05 / 1.19 against 1.36 / 1.46; 128->128 on 28x28
// 0.93 / 1.17 against 1.26 / 1.35; 256->256 on 14x14 0.68 / 1.02 against 0.91 / 1.21; 512->512 on 7x7 0.43 / 0.83
// against 0.63 / 0.84; VGG's 64->128 on 112x112 0.99 / 0.94 against 1.19 / 1.13. Not for a large weight over
// >= 256 positions, where the GEMM does better (VGG's 512->512 on 28x28: 1.03 / 1.06 against 0.91 / 0.91; ResNet-50's
// 512->512 stride 2 on 14x14 at batch 8: 0.72 against 0.58). On contiguous tensors, through a layout change of x and
// dy, only for a large weight on few positions: there it beats the exact-taps dw (512->512 on 7x7 at batch 1: 1.15
// against 1.52; 256->512 stride 2 on 14x14: 1.06 against 1.40), elsewhere it does not (64->64 on 56x56 at batch 8:
// 1.33 against 1.14). With under 16 input channels and >= 32 output channels the block turns, output channels in
// the lanes (channels_last/nhwc_direct.h): the 3-channel stems, whose dw ran the exact-taps kernel or the tiled
// path at 2x-6x torch's time (channels_last, batch 1 / 8, ms: EfficientNet's 3->32 3x3 stride 2 0.16 / 0.87
// against 0.85 / 5.77, torch 0.24 / 1.17; ResNet's 7x7 stem 0.87 / 7.4 against 2.7 / 20.3, torch 1.17 / 9.5; VGG's
// 3->64 3x3 0.96 / 9.7 against 3.2 / 26.9, torch 1.30 / 16.9). Off Intel CPUs, where MKL's GEMM runs slower code,
// channels_last large weights over many positions too (AMD EPYC Zen 4, 2 threads, x torch's time, batch 8 / 32,
// against the GEMM on the NHWC memory: VGG's 512->512 on 28x28 1.01 / 1.05 against 1.29 / 1.33, 256->512 1.01 /
// 1.03 against 1.12 / 1.15, 512->512 on 14x14 0.92 / 0.95 against 1.10 / 1.38, ResNet's on 7x7 0.51 / 0.98 against
// 0.79 / 1.30). On AVX2 the stems only (output channels in the lanes), where the other kernels' sums are 3 channels
// deep (AMD EPYC Zen 4, torch on AVX2 too, channels_last, batch 1 / 8 / 32, against the table's choice without it:
// ResNet's 7x7 stem 0.76 / 0.72 / 0.75 against tiled_nhwc's 1.75 / 1.80 / 1.63, EfficientNet's 3->32 3x3 stride 2
// 0.74 / 0.60 / 0.52 against exact taps' 2.73 / 2.07 / 1.89, VGG's 3->64 0.31 / 0.28 / 0.33 against 0.73 / 0.75 /
// 0.75, ConvNeXt's 4x4 stride 4 stem 0.78 / 0.71 / 0.64 against 1.12 / 1.08 / 1.00). Contiguous strided stems too
// on AVX-512, through the layout changes, against the exact-taps dw (same machine, torch on AVX-512): ResNet's 7x7
// stem 1.03 / 1.03 / 1.05 against 2.98 / 1.61 / 1.68, EfficientNet's 3->32 1.22 / 1.49 / 1.24 against 2.20 / 1.83 /
// 1.45, ConvNeXt's 4x4 stem 1.45 / 1.48 / 1.42 against 1.99 / 2.29 / 1.39; not at stride 1, where the implicit GEMM's
// dw did better (VGG's 3->64 at 8 / 32: 1.11 / 1.16 against 0.85 / 1.04), nor on AVX2 (1.13-2.76 against 0.88-6.0).
bool direct_nhwc_dw(const Problem& p) {
  const bool large = large_weight(p.g, p.out_channels), few = few_positions(p.g);
  const bool outputs_in_lanes = output_channels_in_lanes(p.g.channels, p.out_channels);
  const bool strided_stem = outputs_in_lanes && !unit_stride(p.g) && simd_isa() == SimdIsa::avx512;
  const bool wins =
      p.format == at::MemoryFormat::ChannelsLast ? !large || few || !intel_cpu() : (large && few) || strided_stem;
  const bool lanes_fill = input_channels_in_lanes(p.g.channels) || outputs_in_lanes;
  return wins && direct_runs(p) && (simd_isa() == SimdIsa::avx512 || outputs_in_lanes) && lanes_fill;
}

// A 1x1 dw off Intel CPUs (where MKL runs slower code) on channels_last tensors, AVX-512: the direct dw ahead of the
// one GEMM over the NHWC rows, where the input channels fill the lanes (>= 32), the output channels are no more than
// 4x as many (an expansion's wide dy, read once a block of 64 input channels, cost more than the GEMM) and the weight
// has under 2^19 floats (AMD EPYC Zen 4, 2 threads, x torch's time, batch 1 / 8 / 32, direct against the GEMM):
// ResNet-50's 256->64 on 56x56 0.95 / 1.10 / 1.11 against 1.17 / 1.30 / 1.46, 64->256 0.90 / 0.74 / 0.76 against 1.12
// / 0.96 / 0.93, 512->128 on 28x28 0.93 / 1.07 / 1.07 against 1.03 / 1.24 / 1.28, ResNet-18's 64->128 stride 2
// 0.69 / 0.97 / 1.01 against 0.91 / 1.44 / 1.28, MobileNetV2's 144->24 on 56x56 at 8 / 32 1.20 / 1.21 against 1.68 /
// 2.02, 384->64 on 14x14 0.62 / 0.91 / 1.10 against 0.84 / 1.24 / 1.35, EfficientNet's 240->40 on 28x28 0.76 / 0.96 /
// 1.15 against 0.85 / 1.19 / 1.74, 960->160 on 7x7 0.48 / 0.80 / 0.93 against 0.62 / 1.05 / 1.17. Six times as many
// outputs lost (MobileNetV2's 96->576 on 14x14 1.42 / 1.46 / 1.45 against 1.10 / 1.13 / 1.10, EfficientNet's
// 80->480 1.62 / 1.79 / 1.51 against 1.10 / 1.10 / 1.01), and so did the large weights at batch 32 (ResNet-50's
// 512->1024 stride 2 on 28x28 1.59 against 1.08, 1024->512 on 14x14 1.27 against 1.10).
bool direct_one_by_one_dw(const Problem& p) {
  const int64_t C = p.g.channels, O = p.out_channels;
  return !intel_cpu() && p.format == at::MemoryFormat::ChannelsLast && simd_float32(p) &&
         simd_isa() == SimdIsa::avx512 && p.groups == 1 && p.g.kernel_h == 1 && p.g.kernel_w == 1 &&
         input_channels_in_lanes(C) && O <= 4 * C && O * C < (int64_t{1} << 19);
}

bool always(const Problem&) { return true; }

// ---- The tables ------------------------------------------------------------------------------------------------

// The conditions most rules start with, and those of the last two entries of every table, in words.
#define CONV_EXT_SIMD_RULE "float32 on the SIMD kernels"
constexpr const char* kDepthwise = "depthwise (groups = in_channels), float32 or float64: the scalar depthwise loops";
#define CONV_EXT_DEPTHWISE_NHWC_STRIDED(limit)                                                                   \
  "float32 on the SIMD kernels, depthwise with one output channel per group, channels_last tensors, output rows " \
  "under 8 wide, or a stride > 1" limit " (through a layout change): the channels in the lanes, on " \
  "NHWC memory"
constexpr const char* kDepthwiseNhwcForward =
    "float32 on the SIMD kernels, depthwise with one output channel per group, channels_last tensors, or contiguous "
    "ones with a kernel 3, 5 or 7 wide, dilation_w 1, stride_w 1 or 2, and a kernel 5 or 7 wide or output rows under "
    "8 wide or, on AVX2, stride_w 2 at batch > 1 (by blocks of 16 channels, 8 on AVX2): the channels in the lanes, "
    "on NHWC memory";
#define CONV_EXT_DIRECT_ONE_BY_ONE_RULE \
  "on AVX-512 a 1x1 with >= 512 output positions and, on an Intel CPU, channels_last tensors, a multiple of 64 " \
  "output channels of the pass, up to 128 or no more than its depth, and a depth >= 64 (on other CPUs channels_last " \
  "ones with >= 16 output channels and a depth >= 16, or contiguous ones with >= 64 of each, and under 512 output " \
  "positions where the pass has more outputs than its depth, but for a contiguous forward at batch 1; on AVX2 " \
  "likewise off Intel CPUs, channels_last only)"
constexpr const char* kDirectNhwc =
    CONV_EXT_SIMD_RULE ", groups 1, >= 32 output channels, a kernel larger than 1x1 (or "
    CONV_EXT_DIRECT_ONE_BY_ONE_RULE "), a weight under 2^20 floats or >= 256 output positions (any weight on AVX-512 "
    "off Intel CPUs), and channels_last tensors, or contiguous ones with >= 64 output channels and, on an Intel CPU, "
    ">= 16 input channels and, at stride 1, up to 255 output channels or >= 256 output positions, at larger strides "
    ">= 256 output channels, >= 256 output positions and a kernel 3x3 or larger (on other CPUs any stride, a 1x1 from "
    "128 input channels, or 64 on output planes under 256 positions; on AVX2: channels_last, or on other CPUs stride 1 "
    "and >= 16 input channels, and <= 64 output channels, a kernel 3x3 or larger or, on other CPUs, a channels_last "
    "1x1): the direct convolution on NHWC memory, no columns";
constexpr const char* kTiledNhwc = "groups 1, float32 or float64, channels_last tensors (read as they are) or >= 64 "
                                   "output channels and a batch of output planes under 128 positions: the tiled path "
                                   "on NHWC memory, GEMMs over the positions of several samples";
constexpr const char* kPointwiseNhwc =
    "channels_last tensors or an input of one pixel a plane, pointwise (1x1, stride 1, no padding), groups 1, float32 "
    "or float64: one GEMM on the NHWC rows";
constexpr const char* kTiled = "any convolution: im2col + GEMM in cache-sized tiles, the floor of every table";

// A kernel, the rule that lets it run a problem, and that rule in words (what conv_ext.explain() tells a user; the
// reasons behind each rule are the comments).
struct Entry {
  CpuKernel kernel;
  bool (*accepts)(const Problem&);
  const char* rule;
};

const Entry kForward[] = {
    {CpuKernel::depthwise_nhwc, depthwise_nhwc_forward, kDepthwiseNhwcForward},
    // Ahead of the contiguous kernels, which would take a channels_last problem through a layout change, and of
    // the GEMM on NHWC rows for the 1x1 layers it takes (direct_one_by_one).
    {CpuKernel::direct_nhwc, direct_nhwc, kDirectNhwc},
    {CpuKernel::tiled_nhwc, pointwise_nhwc, kPointwiseNhwc},
    // Output channels in the lanes over a zero-padded copy of the input: for stride_w > 1, where the implicit
    // GEMM's lanes along the output positions would need even-lane permutes (with stride_w 1 the implicit GEMM
    // measured faster on every suite shape). The exact-taps forward runs these problems too, but took 1.16x to
    // 3.5x the padded forward's time on stride-2 layers of networks (AVX-512, Intel Xeon, 2 threads, alternated,
    // medians of 7: a 7x7 stem 1.20 against 1.03 ms, a 64->128 3x3 at 56x56 6.85 against 4.40, its 1x1 2.92
    // against 0.82, a 3-channel 3x3 at 112x112 0.53 against 0.39); only the suite's strided-5x5 went the other
    // way (0.81 against 0.96 ms; AVX2 1.20 against 1.28).
    {CpuKernel::padded,
     [](const Problem& p) { return !columns_pay(p) && channel_lanes(p, p.group_out) && p.g.stride_w != 1; },
     CONV_EXT_SIMD_RULE ", 16 to 63 output channels per group, stride_w > 1"},
    // Where padding and idle lanes would cost the implicit GEMM much (exact_taps_save).
    {CpuKernel::exact_taps,
     [](const Problem& p) {
       return !columns_pay(p) && !is_pointwise(p.g) && channel_lanes(p, p.group_out) && exact_taps_save(p.g);
     },
     CONV_EXT_SIMD_RULE ", 16 to 63 output channels per group, not pointwise, and over 15% of the implicit GEMM's "
                        "multiply-adds would fall on padding and idle lanes"},
    {CpuKernel::depthwise_simd, depthwise_simd, CONV_EXT_SIMD_RULE ", depthwise (groups = in_channels), stride_w <= 2"},
    // A pointwise forward (1x1, stride 1, no padding) has no columns to save: the tiled path's GEMM reads the input
    // in place, faster than the implicit GEMM on every such layer of the networks (e.g. MobileNetV2's 144->24 at
    // 56x56: 1.18x), and than the exact-taps forward where the plane is one pixel (EfficientNet's 1152->48
    // squeeze: 0.009 against 0.104 ms).
    {CpuKernel::implicit,
     [](const Problem& p) { return !columns_pay(p) && !is_pointwise(p.g) && implicit_takes(p, p.g); },
     CONV_EXT_SIMD_RULE ", < 64 output channels per group, not pointwise, stride_w <= 2, output rows that fill "
                        ">= 3/4 of their vectors"},
    {CpuKernel::depthwise, depthwise, kDepthwise},
    {CpuKernel::tiled_nhwc, tiled_nhwc, kTiledNhwc},
    {CpuKernel::tiled, always, kTiled},
};

const Entry kGradInput[] = {
    {CpuKernel::depthwise_nhwc, depthwise_nhwc_dx,
     CONV_EXT_DEPTHWISE_NHWC_STRIDED(" but 2 with dilation 1 and rows >= 8 wide")},
    {CpuKernel::direct_nhwc, direct_nhwc_dx,
     CONV_EXT_SIMD_RULE ", groups 1, stride 1 (on other CPUs than Intel's any stride with dilation 1 and a kernel "
     "larger than 1x1, on AVX2 3x3 or larger: by phases), >= 32 input channels, a kernel larger than 1x1 (or "
     CONV_EXT_DIRECT_ONE_BY_ONE_RULE "), a weight under 2^20 floats or >= 256 input positions (other CPUs: any "
     "weight, but by phases at batch 1), and channels_last "
     "tensors, or contiguous ones with 64 output channels or more, on an Intel CPU no more than input channels (on "
     "AVX2: channels_last, or on other CPUs >= 16 input channels): dx as the direct NHWC convolution of dy"},
    {CpuKernel::tiled_nhwc, pointwise_nhwc, kPointwiseNhwc},
    // One output channel per group: at stride 1 dx is the depthwise convolution of dy; at stride 2 its own kernel.
    {CpuKernel::depthwise_simd,
     [](const Problem& p) {
       return (depthwise_simd(p) && unit_stride(p.g) && p.group_out == 1) || depthwise_stride2_dx(p);
     },
     CONV_EXT_SIMD_RULE ", depthwise, one output channel per group, stride 1 (dx is the depthwise convolution of dy) "
                        "or stride 2 with dilation 1 (even and odd columns from runs of dy's rows)"},
    // Stride 1: dx as the convolution of dy, by the exact-taps forward where it would take that convolution
    // (whose groups have C/g output channels), else by the implicit GEMM.
    {CpuKernel::exact_taps,
     [](const Problem& p) {
       return dx_as_conv2d_on_implicit(p) && channel_lanes(p, p.group_in) &&
              exact_taps_save(transposed_geometry(p.g, p.out_channels));
     },
     CONV_EXT_SIMD_RULE ", < 64 output channels per group, stride 1: dx as the convolution of dy, >= 16 input "
                        "channels per group, and over 15% of the implicit GEMM's multiply-adds would fall on padding "
                        "and idle lanes"},
    {CpuKernel::implicit, dx_as_conv2d_on_implicit,
     CONV_EXT_SIMD_RULE ", < 64 output channels per group, stride 1: dx as the convolution of dy, which the implicit "
                        "GEMM takes"},
    // Stride > 1, dilation 1: by phases on the implicit GEMM, where it takes every phase that a tap reaches (and
    // one at least: where none is, dx is zeros, which the tiled path writes). The phases' rows are dx's channels:
    // under 8 a group (AVX-512's register block has 8 rows), most of each block idles, and the tiled dx, whose GEMM
    // is O/g >= 16 deep, does better (a 3-channel stem, 3->32 3x3 stride 2 on 224 x 224, x torch's time at batch 1
    // / 8 / 32, Intel Xeon, 2 threads, phases against the tiled path: contiguous 0.62 / 0.65 / 0.60 against 0.35 /
    // 0.36 / 0.32, channels_last 1.43 / 1.05 / 1.90 against tiled_nhwc's 1.27 / 1.14 / 1.12; AVX2, torch on AVX2,
    // contiguous 0.74 / 0.72 against 0.44 / 0.42). One channel per group (depthwise) keeps the phases: the tiled
    // dx's GEMMs there are one deep (MobileNetV2's 144 channels on 56 x 56 at batch 8: 1.98 against 3.20).
    {CpuKernel::phased,
     [](const Problem& p) {
       if (columns_pay(p) || unit_stride(p.g) || p.g.dilation_h != 1 || p.g.dilation_w != 1) return false;
       if (p.group_in < 8 && p.group_out >= 16) return false;
       const std::vector<ConvGeometry> phases = grad_input_phase_geometries(p.g, p.out_channels);
       for (const ConvGeometry& phase : phases) {
         if (!implicit_takes(p, phase)) return false;
       }
       return !phases.empty();
     },
     CONV_EXT_SIMD_RULE ", < 64 output channels per group, stride > 1, dilation 1, >= 8 input channels per group "
                        "or < 16 output channels per group: dx by phases, each a stride-1 convolution of dy the "
                        "implicit GEMM takes"},
    {CpuKernel::depthwise, depthwise, kDepthwise},
    // dx of a channels_last stem (under 16 channels per group), its windows over each pixel 9 times or more
    // (kh*kw >= 9 s_h*s_w), at batch > 1, off Intel CPUs: the tiled path through a layout change, whose col2im
    // adds rows of a plane, ahead of the NHWC col2im, which adds runs of a pixel's few channels once per window over
    // it (AMD EPYC Zen 4, 2 threads, x torch's time, batch 8 / 32, against tiled_nhwc: ResNet's 7x7 stride-2 stem
    // 0.51 / 0.48 against 0.97 / 1.26, with both on AVX2 0.68 against 1.46 at 8; VGG's 3x3 stem 0.92 / 0.93 against
    // 1.03 / 1.11, AVX2 1.24 against 1.35). With less overlap it lost (MobileNetV2's 3x3 stride-2 stem on AVX2 at 8:
    // 1.66 against 1.41; ConvNeXt's 4x4 stride-4 stem 0.73 / 0.74 against 0.50 / 0.51), and so did batch 1 on AVX2
    // (VGG's stem 2.18 against 1.60).
    {CpuKernel::tiled,
     [](const Problem& p) {
       const ConvGeometry& g = p.g;
       return !intel_cpu() && p.format == at::MemoryFormat::ChannelsLast && p.group_in < 16 && g.batch > 1 &&
              g.kernel_h * g.kernel_w >= 9 * g.stride_h * g.stride_w;
     },
     "not an Intel CPU, channels_last tensors, under 16 input channels per group, windows over each pixel >= 9 times "
     "(kh*kw >= 9 stride_h*stride_w), batch > 1: im2col + GEMM, col2im on the planes (through a layout change)"},
    {CpuKernel::tiled_nhwc, tiled_nhwc, kTiledNhwc},
    {CpuKernel::tiled, always, kTiled},
};

const Entry kGradWeight[] = {
    {CpuKernel::direct_nhwc, direct_one_by_one_dw,
     "float32 on AVX-512, not an Intel CPU, channels_last tensors, groups 1, 1x1, >= 32 input channels, no more "
     "than 4x as many output channels and a weight under 2^19 floats: dw without columns"},
    {CpuKernel::depthwise_nhwc, depthwise_nhwc_dw,
     CONV_EXT_DEPTHWISE_NHWC_STRIDED(" but 2 with dilation 1, a kernel up to 7 x 7 and rows >= 8 wide, and under "
                                     "32 MiB of input")},
    {CpuKernel::depthwise_simd, depthwise_stride2_dw,
     CONV_EXT_SIMD_RULE ", depthwise, one output channel per group, stride 2, dilation 1, a kernel 3, 5 or 7 wide "
                        "and up to 7 tall: runs of dy's rows times runs of the input rows' even or odd columns"},
    {CpuKernel::tiled_nhwc, pointwise_nhwc, kPointwiseNhwc},
    // Contiguous, a batch under the thread count: the tiled path sums dw in place, one GEMM per sample and group
    // (ATen's, on every thread), no partial sums to add or transpose; ahead of the kernels below on few positions
    // (x torch's time, AVX-512, Intel Xeon, 2 threads, batch 1, against the table's previous choice: ResNet's
    // 256->256 3x3 on 14 x 14 0.99 against the exact-taps dw's 1.26, 512->512 on 14 x 14 0.88 and on 7 x 7 0.73
    // against the direct dw's 1.20 and 0.98, 256->512 stride 2 0.63 against 0.88; the 1x1 layers against the NHWC
    // GEMM through a layout change: ResNet-50's 512->2048 on 7 x 7 0.72 against 0.80, 256->1024 on 14 x 14 0.81
    // against 1.01, MobileNetV2's 64->384 1.13 against 1.63; AVX2, torch on AVX2, against the NHWC GEMM: 512->512
    // 3x3 on 7 x 7 0.93 against 1.21, 256->256 0.96 against 1.14, 512->2048 0.78 against 0.85, 64->384 1.09 against
    // 1.57). Over more positions the column-free dws keep theirs (128->128 3x3 on 28 x 28: 1.17 against the
    // exact-taps dw's 1.05).
    {CpuKernel::tiled,
     [](const Problem& p) {
       return p.format == at::MemoryFormat::Contiguous && p.g.batch < at::get_num_threads() &&
              wide_on_few_positions(p);
     },
     "contiguous tensors, a batch under the thread count, >= 64 output channels per group, under 256 output "
     "positions: the tiled path's GEMMs summed into dw itself"},
    {CpuKernel::direct_nhwc, direct_nhwc_dw,
     "float32 on AVX-512, groups 1, a kernel larger than 1x1, >= 32 input channels (or under 16 and >= 32 output "
     "channels, on AVX2 too), and channels_last tensors (on an Intel CPU with a weight under 2^20 floats or under 256 "
     "output positions), or contiguous ones with a larger weight and under 256 output positions or, on AVX-512, "
     "strided and under 16 input channels: dw without columns"},
    // A channels_last dw with >= 64 output channels per group: dy^T . columns on the NHWC memory, ahead of the
    // exact-taps dw, which takes dy and x through a layout change (channels_last, AVX-512, Intel Xeon, 2 threads, ms:
    // 512->512 3x3 on 7x7 2.7 against 6.0 at batch 1, 8.9 against 12.6 at batch 8; 256->512 1x1 stride 2 on 56x56
    // 0.9 against 3.6; the 7x7 stem 2.7 against 4.3; 64->64 3x3 on 56x56 1.38 against 1.35, the one near-tie).
    {CpuKernel::tiled_nhwc,
     [](const Problem& p) { return p.format == at::MemoryFormat::ChannelsLast && columns_pay(p) && tiled_nhwc(p); },
     "channels_last tensors, groups 1, float32 or float64, >= 64 output channels: dy^T . columns on the NHWC "
     "memory"},
    // A 1x1 dw on an output plane under 128 positions with >= 64 output channels per group, in any memory format:
    // one GEMM over the NHWC rows of every sample, where the tiled path's GEMMs have a depth of one plane and the
    // exact-taps dw streams the wide weight (contiguous, ms: ResNet-50's 512->2048 on 7 x 7 2.88 -> 1.08 at batch 1,
    // 6.8 -> 3.9 at 8, 21.4 -> 14.9 at 32; its 1024->2048 stride 2 4.5 -> 1.9, 15.3 -> 8.3, 47.1 -> 31.8;
    // MobileNetV2's 160->960 on 7 x 7 0.32 -> 0.19 at batch 1, 2.47 -> 3.28 at 32, the one loss). For 3x3 kernels
    // the two were level (512->512 on 7 x 7: 4.5 against the exact-taps dw's 4.2 at batch 1, 11.1 against 11.8 at 8).
    // Likewise under 256 output positions in all (ResNet-50's 1x1 layers on 14 x 14 at batch 1, ms, against the
    // tiled path's GEMM over the input: 256->1024 0.78 against 1.53, 1024->256 0.75 against 1.52; AVX2 1.21 against
    // 1.50).
    {CpuKernel::tiled_nhwc,
     [](const Problem& p) {
       return p.g.kernel_h == 1 && p.g.kernel_w == 1 && (narrow_plane(p) || wide_on_few_positions(p)) &&
              nhwc_gemm_runs(p);
     },
     "1x1, groups 1, float32 or float64, >= 64 output channels, an output plane under 128 positions or under 256 "
     "output positions in all: one GEMM over the NHWC rows of every sample"},
    // A pointwise dw (1x1, stride 1, no padding) is a GEMM over the input itself, which the tiled path runs
    // without columns: faster there than on the exact-taps dw (the pointwise suite shape, AVX-512 on an Intel Xeon
    // with AMX, 2 threads: 1.51 against 1.83 ms).
    {CpuKernel::tiled, [](const Problem& p) { return is_pointwise(p.g) && exact_taps_dw(p); },
     CONV_EXT_SIMD_RULE ", pointwise (1x1, stride 1, no padding): one GEMM over the input itself, no columns"},
    {CpuKernel::exact_taps, exact_taps_dw,
     CONV_EXT_SIMD_RULE " (on AVX2 < 64 output channels per group), >= 16 output channels per group, and >= 8 input "
                        "channels per group or no implicit dw"},
    {CpuKernel::implicit, implicit_dw,
     CONV_EXT_SIMD_RULE " (on AVX2 < 64 output channels per group), stride_w 1, the implicit GEMM takes the problem"},
    {CpuKernel::depthwise, depthwise, kDepthwise},
    // A wide dw over under 256 output positions that the kernels above do not take (on AVX2 or in float64): the
    // tiled path's GEMMs are only as deep as the positions and each adds into the whole weight, so the NHWC GEMM
    // over all positions does better, through a layout change (AVX2 with torch on AVX2 too, ms, batch 1: 512->512
    // 3x3 on 7 x 7 4.5 against 11.1, 256->512 stride 2 on 14 x 14 2.0 against 5.6, 256->256 on 14 x 14 2.0 against
    // 2.9; torch 2.1, 1.4, 1.5).
    {CpuKernel::tiled_nhwc,
     [](const Problem& p) { return wide_on_few_positions(p) && nhwc_gemm_runs(p); },
     "groups 1, float32 or float64, >= 64 output channels, under 256 output positions: dy^T . columns on the NHWC "
     "memory, through a layout change"},
    {CpuKernel::tiled_nhwc, tiled_nhwc, kTiledNhwc},
    {CpuKernel::tiled, always, kTiled},
};

#undef CONV_EXT_SIMD_RULE
#undef CONV_EXT_DEPTHWISE_NHWC_STRIDED
#undef CONV_EXT_DIRECT_ONE_BY_ONE_RULE

constexpr const char* kPreferred = "preferred by conv_ext._C._prefer_cpu_kernel (a test and benchmark switch)";

std::atomic<int> g_preferred[3] = {-1, -1, -1};

template <size_t N>
KernelChoice first_accepting(const Entry (&table)[N], const Problem& p, int pass) {
  const int preferred = g_preferred[pass].load();
  if (preferred >= 0) {
    for (const Entry& entry : table) {
      if (static_cast<int>(entry.kernel) == preferred && entry.accepts(p)) return {entry.kernel, kPreferred};
    }
  }
  for (const Entry& entry : table) {
    if (entry.accepts(p)) return {entry.kernel, entry.rule};
  }
  return {CpuKernel::tiled, kTiled};  // unreachable: each table ends with the tiled path
}

template <size_t N>
std::vector<CpuKernel> all_accepting(const Entry (&table)[N], const Problem& p) {
  std::vector<CpuKernel> kernels;
  for (const Entry& entry : table) {
    if (entry.accepts(p) && std::find(kernels.begin(), kernels.end(), entry.kernel) == kernels.end()) {
      kernels.push_back(entry.kernel);
    }
  }
  return kernels;
}

Problem make_problem(at::ScalarType dtype, const ConvGeometry& g, int64_t groups, int64_t out_channels,
                     at::MemoryFormat format) {
  return {dtype, g, groups, out_channels, format, g.channels / groups, out_channels / groups};
}

}  // namespace

std::array<std::vector<CpuKernel>, 3> cpu_kernel_candidates(at::ScalarType dtype, const ConvGeometry& g,
                                                            int64_t groups, int64_t out_channels,
                                                            at::MemoryFormat format) {
  const Problem p = make_problem(dtype, g, groups, out_channels, format);
  return {all_accepting(kForward, p), all_accepting(kGradInput, p), all_accepting(kGradWeight, p)};
}

void prefer_cpu_kernel(int pass, std::optional<CpuKernel> kernel) {
  TORCH_CHECK_INDEX(pass >= 0 && pass < 3, "conv_ext: pass must be 0 (forward), 1 (dx) or 2 (dw), got ", pass);
  g_preferred[pass].store(kernel ? static_cast<int>(*kernel) : -1);
}

std::optional<CpuKernel> preferred_cpu_kernel(int pass) {
  const int preferred = g_preferred[pass].load();
  return preferred < 0 ? std::nullopt : std::optional(static_cast<CpuKernel>(preferred));
}

std::optional<CpuKernel> cpu_kernel_named(const std::string& name) {
  for (CpuKernel kernel : {CpuKernel::padded, CpuKernel::exact_taps, CpuKernel::implicit, CpuKernel::phased,
                           CpuKernel::depthwise, CpuKernel::depthwise_simd, CpuKernel::depthwise_nhwc,
                           CpuKernel::direct_nhwc, CpuKernel::tiled_nhwc, CpuKernel::tiled}) {
    if (name == kernel_name(kernel)) return kernel;
  }
  return std::nullopt;
}

CpuKernelChoices explain_cpu_kernels(at::ScalarType dtype, const ConvGeometry& g, int64_t groups,
                                     int64_t out_channels, at::MemoryFormat format) {
  const Problem p = make_problem(dtype, g, groups, out_channels, format);
  return {first_accepting(kForward, p, 0), first_accepting(kGradInput, p, 1), first_accepting(kGradWeight, p, 2)};
}

CpuKernels choose_cpu_kernels(at::ScalarType dtype, const ConvGeometry& g, int64_t groups, int64_t out_channels,
                              at::MemoryFormat format) {
  const CpuKernelChoices choices = explain_cpu_kernels(dtype, g, groups, out_channels, format);
  return {choices.forward.kernel, choices.grad_input.kernel, choices.grad_weight.kernel};
}

const char* kernel_name(CpuKernel kernel) {
  switch (kernel) {
    case CpuKernel::padded: return "padded";
    case CpuKernel::exact_taps: return "exact_taps";
    case CpuKernel::implicit: return "implicit";
    case CpuKernel::phased: return "phased";
    case CpuKernel::depthwise: return "depthwise";
    case CpuKernel::depthwise_simd: return "depthwise_simd";
    case CpuKernel::depthwise_nhwc: return "depthwise_nhwc";
    case CpuKernel::direct_nhwc: return "direct_nhwc";
    case CpuKernel::tiled_nhwc: return "tiled_nhwc";
    case CpuKernel::tiled: return "tiled";
  }
  return "?";
}

}  // namespace conv_ext::cpu
