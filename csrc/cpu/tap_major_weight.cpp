// The weight packed tap-major for the column-free GEMMs (tap_major_weight.h).
#include "cpu/tap_major_weight.h"

#include <cstddef>

namespace conv_ext::cpu {

std::vector<float> pack_weight_tap_major(const float* weight, int64_t groups, int64_t out_channels,
                                         int64_t group_channels, int64_t taps) {
  const int64_t group_out = out_channels / groups;
  std::vector<float> packed(static_cast<size_t>(out_channels * group_channels * taps));
  for (int64_t group = 0; group < groups; ++group) {
    for (int64_t o = 0; o < group_out; ++o) {
      for (int64_t c = 0; c < group_channels; ++c) {
        for (int64_t tap = 0; tap < taps; ++tap) {
          packed[((group * taps + tap) * group_channels + c) * group_out + o] =
              weight[((group * group_out + o) * group_channels + c) * taps + tap];
        }
      }
    }
  }
  return packed;
}

}  // namespace conv_ext::cpu
