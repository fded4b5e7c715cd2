// Which outputs the SIMD kernels stream past the caches (non-temporal stores) rather than store: the ones they
// write once, vector by vector, too large to stay in the threads' L2 for whatever reads them next. A streamed line
// goes to memory without first being read into the caches, so memory moves half the bytes; a small output stored
// into the caches is written back later, outside the kernel, and its reader finds it in L2. AMD EPYC Zen 4, 2
// threads, channels_last forward, x torch's time, mean over the networks' layers at batch 1 / 8 / 32, streamed from
// 1 MiB a thread against always and against never: the direct kernel's 1x1 layers 0.89 / 0.97 / 0.93 against 0.91 /
// 0.97 / 0.93 and 0.92 / 1.04 / 1.05; the NHWC depthwise forward 0.66 / 0.84 / 0.77 against 0.70 / 0.86 / 0.77 and
// 0.75 / 0.96 / 0.98 (at batch 1 always streamed lost on small planes: EfficientNet's 144 channels 5x5 stride 2 0.67
// against 0.57 never streamed, 480 3x3 on 14x14 0.59 against 0.52).
#pragma once

#include <ATen/Parallel.h>

#include <cstdint>

namespace conv_ext::cpu {

// At least this many bytes of output a thread (the L2 of a core of the machines measured: 1 MiB on AMD EPYC Zen 4).
constexpr int64_t kStreamedBytesPerThread = int64_t{1} << 20;

// Whether an NHWC output of `elements` floats with `channels` channels a pixel, at `data`, is streamed: its vectors
// of 16 channels start on 64-byte boundaries (channels a multiple of 16), and it is large.
inline bool streams_output(const float* data, int64_t channels, int64_t elements) {
  return channels % 16 == 0 && reinterpret_cast<uintptr_t>(data) % 64 == 0 &&
         elements * int64_t{sizeof(float)} >= kStreamedBytesPerThread * at::get_num_threads();
}

}  // namespace conv_ext::cpu
