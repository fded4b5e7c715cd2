// The CPU kernels' part of the Python module conv_ext._C (python_bindings.cpp): the instruction set of the SIMD
// kernels, their switch, and the kernel table's choice (for tests). The op layer's module calls it.
#pragma once

#include <pybind11/pybind11.h>

namespace conv_ext::cpu {

void add_python_bindings(pybind11::module_& module);

}  // namespace conv_ext::cpu
