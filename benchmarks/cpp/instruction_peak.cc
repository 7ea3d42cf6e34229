// One core's peak multiply-add rate: AVX-512 FMA (VFMADD231PS, float32) against the bf16 dot
// product (VDPBF16PS: 32 bf16 products summed pairwise into 16 float32 per instruction), each
// on 12 independent accumulators so neither instruction waits on its latency. The ceiling the
// bf16 GEMM kernel (cpp/src/kernels/bf16_gemm.cc) is measured against: docs/benchmarks.md.
//
//   g++ -O2 benchmarks/cpp/instruction_peak.cc -o instruction_peak && ./instruction_peak
#include <immintrin.h>

#include <chrono>
#include <cstdio>

namespace {

constexpr long kSteps = 100'000'000;
constexpr int kChains = 12;

__attribute__((target("avx512f,avx512bf16"))) float dot_products() {
  __m512 sums[kChains];
  for (int i = 0; i < kChains; ++i) sums[i] = _mm512_set1_ps(static_cast<float>(i));
  __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80);  // bf16 pairs (1.0, 1.0)
  const __m512bh b = (__m512bh)_mm512_set1_epi32(0x3f803f81);
  for (long step = 0; step < kSteps; ++step) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) sums[i] = _mm512_dpbf16_ps(sums[i], a, b);
    asm volatile("" : "+v"(a));  // keeps the loop from being folded away
  }
  __m512 total = sums[0];
  for (int i = 1; i < kChains; ++i) total = _mm512_add_ps(total, sums[i]);
  return _mm512_reduce_add_ps(total);
}

__attribute__((target("avx512f"))) float fused_multiply_adds() {
  __m512 sums[kChains];
  for (int i = 0; i < kChains; ++i) sums[i] = _mm512_set1_ps(static_cast<float>(i));
  __m512 a = _mm512_set1_ps(1.0001f);
  const __m512 b = _mm512_set1_ps(0.9999f);
  for (long step = 0; step < kSteps; ++step) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) sums[i] = _mm512_fmadd_ps(a, b, sums[i]);
    asm volatile("" : "+v"(a));
  }
  __m512 total = sums[0];
  for (int i = 1; i < kChains; ++i) total = _mm512_add_ps(total, sums[i]);
  return _mm512_reduce_add_ps(total);
}

template <typename Function>
double seconds(Function function, float& sink) {
  const auto start = std::chrono::steady_clock::now();
  sink += function();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main() {
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bf16")) {
    std::fprintf(stderr, "instruction_peak: this CPU lacks AVX-512 or AVX512_BF16\n");
    return 1;
  }
  float sink = 0;
  const double instructions = static_cast<double>(kSteps) * kChains;
  for (int round = 0; round < 2; ++round) {  // the first round also warms the clock up
    const double fma = seconds(fused_multiply_adds, sink);
    const double dot = seconds(dot_products, sink);
    std::printf(
        "VFMADD231PS zmm: %.2f G/s = %.1f GFLOP/s; VDPBF16PS zmm: %.2f G/s = %.1f GFLOP/s\n",
        instructions / fma / 1e9, instructions * 32 / fma / 1e9, instructions / dot / 1e9,
        instructions * 64 / dot / 1e9);
  }
  return sink == 0.5f ? 2 : 0;  // uses the results; never 0.5 in practice
}
