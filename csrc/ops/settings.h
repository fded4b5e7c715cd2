// The process-wide settings of the ops (settings.cpp; conv_ext/settings.py in Python): the column workspace bound
// and its peak, and the switch to the reference host kernels.
#pragma once

#include <cstdint>

namespace conv_ext {

// The bound on the column workspace, in bytes (default 64 MiB): of one chunk of the batch (textbook path) or of the
// tiles in flight (tiled path). A chunk never holds
// fewer than one sample, so a single sample whose columns exceed the bound still runs, alone.
int64_t workspace_limit_bytes();
void set_workspace_limit_bytes(int64_t bytes);
// The largest column workspace allocated since the last reset, in bytes (for the benchmark's memory report).
int64_t peak_workspace_bytes();
void reset_peak_workspace_bytes();
void record_workspace_bytes(int64_t bytes);

// When set, the CPU ops run the textbook path with the reference host kernels instead of the kernel table's
// kernels (a test switch: it checks the device code and the textbook orchestration without a GPU).
bool host_reference_kernels_enabled();
void set_host_reference_kernels_enabled(bool enabled);
}  // namespace conv_ext
