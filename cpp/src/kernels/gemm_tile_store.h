#pragma once

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstdint>

namespace tsrunner::detail {

// The epilogue of tsrunner's GEMM tiles (small_gemm.cc, bf16_gemm.cc): R rows of 16 float32
// sums plus bias and residual, stored with `mask` selecting the columns that exist.
template <int R>
__attribute__((target("avx512f"), always_inline)) inline void store_tile(const __m512 (&acc)[R],
                                                                         const float* bias,
                                                                         const float* residual,
                                                                         float* out, int64_t n,
                                                                         __mmask16 mask) {
  const __m512 b = bias ? _mm512_maskz_loadu_ps(mask, bias) : _mm512_setzero_ps();
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    __m512 value = _mm512_add_ps(acc[r], b);
    if (residual) value = _mm512_add_ps(value, _mm512_maskz_loadu_ps(mask, residual + r * n));
    _mm512_mask_storeu_ps(out + r * n, mask, value);
  }
}

}  // namespace tsrunner::detail
#endif
