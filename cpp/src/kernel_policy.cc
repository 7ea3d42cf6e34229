#include "kernel_policy.h"

#include <ATen/Config.h>

#include "kernels/bf16_gemm.h"
#include "kernels/cpu_isa.h"
#include "kernels/small_gemm.h"
#include "tsrunner/cpu_info.h"
#include "tsrunner/errors.h"

namespace tsrunner::detail {

LinearPlan plan_linears(bool bf16, const KernelSettings& kernels) {
  LinearPlan plan;
  plan.bf16 = bf16;
  plan.small_rows = !bf16 && small_gemm_supported() && kernels.small_gemm_rows > 0;
  plan.small_gemm_rows = kernels.small_gemm_rows;
  // Where AMX exists oneDNN's AMX kernels are the faster bf16 GEMMs. bf16_kernel=false keeps
  // compute=bf16 on oneDNN's bf16 GEMMs where tsrunner's kernel would run (docs/cli.md): the
  // A/B that measures the kernel, and a way back if it misbehaves.
  plan.bf16_panels = bf16 && bf16_gemm_supported() && !cpu_has(CpuIsa::kAmx) && kernels.bf16_kernel;
  return plan;
}

void check_kernel_path_name(const std::string& kernel_path) {
  if (kernel_path != "auto" && kernel_path != "onednn" && kernel_path != "default") {
    throw InvalidInput("unknown kernel path \"" + kernel_path +
                       "\" (expected auto, onednn or default)");
  }
}

void check_compute_name(const std::string& compute) {
  if (compute != "fp32" && compute != "bf16") {
    throw InvalidInput("unknown compute \"" + compute + "\" (expected fp32 or bf16)");
  }
}

std::string auto_declines(bool on_cpu) {
  if (!on_cpu) return "device is not the CPU";
  if (!AT_MKLDNN_ENABLED()) return "LibTorch built without oneDNN";
#if !defined(__x86_64__)
  return "oneDNN path measured on x86-64 only";
#else
  if (!cpu_info().avx2) return "CPU lacks AVX2";
  return "";
#endif
}

// Without AVX512_BF16 or AMX, oneDNN emulates bf16 GEMMs with fp32 instructions plus
// conversions: slower than fp32, so refused.
std::string bf16_declines() {
  if (cpu_has(CpuIsa::kAvx512Bf16)) return "";
  return "this CPU (" + cpu_info().model + ") has neither AVX512_BF16 nor AMX-BF16";
}

}  // namespace tsrunner::detail

namespace tsrunner {

std::string auto_kernel_path() {
  return detail::auto_declines(true).empty() ? "onednn" : "default";
}

std::string auto_kernel_path_reason() {
  const std::string declined = detail::auto_declines(true);
  return declined.empty() ? "x86-64 CPU with AVX2 or better, oneDNN available" : declined;
}

}  // namespace tsrunner
