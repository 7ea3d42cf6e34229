#include "kernels/cpu_isa.h"

#include <cstdlib>

#include "tsrunner/cpu_info.h"

namespace tsrunner::detail {
namespace {

CpuIsa detect() {
#if defined(__x86_64__)
  const CpuInfo& cpu = cpu_info();
  if (!cpu.avx2 || !cpu.has_flag("fma")) return CpuIsa::kGeneric;
  if (!cpu.avx512) return CpuIsa::kAvx2;
  if (!cpu.has_flag("avx512bw") || !cpu.has_flag("avx512_vnni")) return CpuIsa::kAvx512;
  if (!cpu.avx512_bf16) return CpuIsa::kAvx512Vnni;
  if (!cpu.has_flag("amx_bf16") || !cpu.has_flag("amx_int8")) return CpuIsa::kAvx512Bf16;
  return CpuIsa::kAmx;
#else
  return CpuIsa::kGeneric;
#endif
}

bool bf16_hidden() {
  const char* hook = std::getenv("TSR_TEST_CPU_WITHOUT_BF16");
  return hook != nullptr && std::string(hook) == "1";
}

}  // namespace

CpuIsa cpu_isa() {
  static const CpuIsa detected = detect();
  if (detected >= CpuIsa::kAvx512Bf16 && bf16_hidden()) return CpuIsa::kAvx512Vnni;
  return detected;
}

bool cpu_has(CpuIsa isa) { return cpu_isa() >= isa; }

std::string isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kGeneric:
      return "generic";
    case CpuIsa::kAvx2:
      return "avx2";
    case CpuIsa::kAvx512:
      return "avx512";
    case CpuIsa::kAvx512Vnni:
      return "avx512_vnni";
    case CpuIsa::kAvx512Bf16:
      return "avx512_bf16";
    case CpuIsa::kAmx:
      return "amx";
  }
  return "generic";
}

}  // namespace tsrunner::detail
