#include "kernels/cpu_isa.h"

#include <cstdlib>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

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

bool cpu_has_avx_vnni() {
#if defined(__x86_64__)
  // From CPUID rather than /proc/cpuinfo: kernels before 5.13 do not list avx_vnni.
  static const bool has = [] {
    unsigned eax = 0;
    unsigned ebx = 0;
    unsigned ecx = 0;
    unsigned edx = 0;
    if (__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) == 0) return false;
    return (eax & (1u << 4)) != 0 && cpu_info().avx2;
  }();
  return has;
#else
  return false;
#endif
}

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
