// A matrix as a pointer and two strides: the operands of the GEMMs and of the shared micro-kernel.
#pragma once

#include <cstdint>

namespace conv_ext::cpu {

// A matrix in memory: element (i, j) at data[i * row_stride + j * col_stride].
template <typename T>
struct StridedMatrix {
  T* data;
  int64_t row_stride, col_stride;
};

}  // namespace conv_ext::cpu
