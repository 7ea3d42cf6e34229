#pragma once

#include <cstdint>

#include "tsrunner/options.h"

namespace tsrunner::detail {

// RunnerOptions' kernel switches with every unset one filled in, once, at load: from its TSR_*
// environment variable (the one place they are read; docs/environment.md), else its default.
struct KernelSettings {
  enum class Attention { kOff, kOp, kInPlace };
  Attention attention = Attention::kInPlace;
  bool layer_norm = true;
  bool bf16_kernel = true;
  int64_t small_gemm_rows = 48;
};

// Throws InvalidInput naming the option or the environment variable whose value is not one of
// its values.
KernelSettings resolve_kernel_settings(const RunnerOptions& options);

}  // namespace tsrunner::detail
