#pragma once

#include <CLI/CLI.hpp>

#include "tsrunner/runner.h"

namespace tsrunner::cli {

// RunnerOptions' kernel path and switches as command-line flags, declared once for tsrun, tsrun
// bench and tsrun serve: --kernel-path auto|onednn|default, --fused-attention on|op|off,
// --fused-layer-norm on|off, --bf16-kernel on|off,
// --small-gemm-rows N. A flag left out keeps the field unset (its TSR_* environment variable,
// else the default: docs/environment.md). Parsed values go into `options`.
void add_kernel_flags(CLI::App& app, RunnerOptions& options);

// Copies the kernel path and the kernel switches `flags` holds into `options`.
void copy_kernel_flags(const RunnerOptions& flags, RunnerOptions& options);

}  // namespace tsrunner::cli
