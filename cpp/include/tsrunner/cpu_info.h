#pragma once

#include <string>

#include "tsrunner/export.h"

namespace tsrunner {

// The CPU this process runs on, as the kernel choice (RunnerOptions::kernel_path) sees it;
// benchmark reports name it beside every figure.
struct TSR_API CpuInfo {
  std::string model;  // /proc/cpuinfo's "model name" ("unknown" where there is none)
  bool avx2 = false;
  bool avx512 = false;
  bool avx512_bf16 = false;
  std::string flags;  // /proc/cpuinfo's "flags": every ISA extension, space-separated

  // Whether `flags` lists `flag` ("avx2", "avx512_vnni", ...).
  bool has_flag(const std::string& flag) const;
};

// Read once per process.
TSR_API const CpuInfo& cpu_info();

// The kernel path RunnerOptions::kernel_path = "auto" takes for a model on this CPU ("onednn" or
// "default"; a model without float32 Linear layers stays on "default"), and why.
TSR_API std::string auto_kernel_path();
TSR_API std::string auto_kernel_path_reason();

// The names before "engine" came to mean the executor (TorchScript or AOTInductor).
[[deprecated("use auto_kernel_path")]] inline std::string auto_engine() {
  return auto_kernel_path();
}
[[deprecated("use auto_kernel_path_reason")]] inline std::string auto_engine_reason() {
  return auto_kernel_path_reason();
}

}  // namespace tsrunner
