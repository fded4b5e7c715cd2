// The weight in the order the column-free GEMMs sum it: tap by tap, channels inside.
#pragma once

#include <cstdint>
#include <vector>

namespace conv_ext::cpu {

// The weight (O, C/g, kh, kw) as [group][tap][c][o]: the sums of the implicit GEMM and of the padded and exact-taps
// forwards run tap by tap, channels inside, with the output channels of one step side by side.
std::vector<float> pack_weight_tap_major(const float* weight, int64_t groups, int64_t out_channels,
                                         int64_t group_channels, int64_t taps);

}  // namespace conv_ext::cpu
