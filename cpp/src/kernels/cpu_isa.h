#pragma once

#include <string>

namespace tsrunner::detail {

// The instruction sets tsrunner's own kernels are written for, as a ladder: each level has every
// instruction of the levels below it (real CPUs do: Cascade Lake stops at kAvx512Vnni, Zen 4 and
// Cooper Lake at kAvx512Bf16, Sapphire Rapids is kAmx). A kernel names the lowest level it needs
// and asks cpu_isa() whether this CPU reaches it; nothing else reads CPU flags for a kernel
// (but cpu_has_avx_vnni(), below).
enum class CpuIsa {
  kGeneric,     // plain C++: any CPU
  kAvx2,        // AVX2 + FMA
  kAvx512,      // AVX-512F
  kAvx512Vnni,  // + AVX-512BW and VPDPBUSD (u8 x s8 dot products into int32)
  kAvx512Bf16,  // + VDPBF16PS (bf16 dot products into float32)
  kAmx,         // + AMX tiles (bf16 and int8): where oneDNN's AMX kernels are the fast path
};

// The one dispatch point: the highest level this CPU reaches, detected once. The test hook
// TSR_TEST_CPU_WITHOUT_BF16=1 (docs/testing.md), read on every call so a test can set it in a
// running process, caps the answer below kAvx512Bf16.
CpuIsa cpu_isa();

// Whether this CPU reaches `isa`: cpu_isa() >= isa.
bool cpu_has(CpuIsa isa);

// Whether this CPU has AVX-VNNI (VEX VPDPBUSD on 256-bit registers; CPUID.(EAX=7,ECX=1):EAX
// bit 4) and AVX2. Off the ladder above: Alder Lake and later Intel clients, Sierra Forest and
// Zen 5 desktop parts have it without AVX-512; Zen 4 and Ice Lake have AVX512-VNNI without it.
bool cpu_has_avx_vnni();

// "generic", "avx2", "avx512", "avx512_vnni", "avx512_bf16", "amx".
std::string isa_name(CpuIsa isa);

}  // namespace tsrunner::detail
