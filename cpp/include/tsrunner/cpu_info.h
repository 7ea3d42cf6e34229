#pragma once

#include <string>

namespace tsrunner {

// The CPU this process runs on, as the kernel choice (RunnerOptions::engine) sees it; benchmark
// reports name it beside every figure.
struct CpuInfo {
  std::string model;  // /proc/cpuinfo's "model name" ("unknown" where there is none)
  bool avx2 = false;
  bool avx512 = false;
  bool avx512_bf16 = false;
  std::string flags;  // /proc/cpuinfo's "flags": every ISA extension, space-separated

  // Whether `flags` lists `flag` ("avx2", "avx512_vnni", ...).
  bool has_flag(const std::string& flag) const;
};

// Read once per process.
const CpuInfo& cpu_info();

// The kernel path RunnerOptions::engine = "auto" takes for a model on this CPU ("onednn" or
// "default"; a model without float32 Linear layers stays on "default"), and why.
std::string auto_engine();
std::string auto_engine_reason();

}  // namespace tsrunner
