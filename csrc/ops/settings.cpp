// The process-wide settings of the ops (settings.h).
#include "ops/settings.h"

#include <c10/util/Exception.h>

#include <atomic>

namespace conv_ext {

namespace {

std::atomic<int64_t> g_workspace_limit_bytes{int64_t{64} << 20};
std::atomic<int64_t> g_peak_workspace_bytes{0};
std::atomic<bool> g_host_reference_kernels{false};

}  // namespace

int64_t workspace_limit_bytes() { return g_workspace_limit_bytes.load(); }

void set_workspace_limit_bytes(int64_t bytes) {
  TORCH_CHECK_VALUE(bytes > 0, "conv_ext: the workspace limit must be a positive number of bytes, got ", bytes);
  g_workspace_limit_bytes.store(bytes);
}

int64_t peak_workspace_bytes() { return g_peak_workspace_bytes.load(); }
void reset_peak_workspace_bytes() { g_peak_workspace_bytes.store(0); }

void record_workspace_bytes(int64_t bytes) {
  int64_t seen = g_peak_workspace_bytes.load();
  while (bytes > seen && !g_peak_workspace_bytes.compare_exchange_weak(seen, bytes)) {
  }
}

bool host_reference_kernels_enabled() { return g_host_reference_kernels.load(); }
void set_host_reference_kernels_enabled(bool enabled) { g_host_reference_kernels.store(enabled); }

}  // namespace conv_ext
