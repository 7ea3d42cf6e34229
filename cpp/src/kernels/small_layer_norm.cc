#include "kernels/small_layer_norm.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kernels/cpu_isa.h"

namespace tsrunner::detail {
namespace {

void normalize_generic(const float* x, int64_t n, const float* weight, const float* bias, float eps,
                       float* y) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += x[i];
  const float mean = sum / static_cast<float>(n);
  float squares = 0.0f;
  for (int64_t i = 0; i < n; ++i) squares += (x[i] - mean) * (x[i] - mean);
  const float rstd = 1.0f / std::sqrt(squares / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mean) * rstd * weight[i] + bias[i];
}

#if defined(__x86_64__)
// Rows whose length is a multiple of 16, on AVX-512.
__attribute__((target("avx512f"))) void normalize_avx512(const float* x, int64_t n,
                                                         const float* weight, const float* bias,
                                                         float eps, float* y) {
  __m512 sum = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) sum = _mm512_add_ps(sum, _mm512_loadu_ps(x + i));
  const __m512 mean = _mm512_set1_ps(_mm512_reduce_add_ps(sum) / static_cast<float>(n));
  __m512 squares = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __m512 centred = _mm512_sub_ps(_mm512_loadu_ps(x + i), mean);
    squares = _mm512_fmadd_ps(centred, centred, squares);
  }
  const float variance = _mm512_reduce_add_ps(squares) / static_cast<float>(n);
  const __m512 rstd = _mm512_set1_ps(1.0f / std::sqrt(variance + eps));
  for (int64_t i = 0; i < n; i += 16) {
    const __m512 centred = _mm512_sub_ps(_mm512_loadu_ps(x + i), mean);
    const __m512 scaled = _mm512_mul_ps(_mm512_mul_ps(centred, rstd), _mm512_loadu_ps(weight + i));
    _mm512_storeu_ps(y + i, _mm512_add_ps(scaled, _mm512_loadu_ps(bias + i)));
  }
}
#endif

}  // namespace

int64_t small_layer_norm_max_rows() { return 64; }

at::Tensor small_layer_norm(const at::Tensor& input, const at::Tensor& weight,
                            const at::Tensor& bias, double eps) {
  const int64_t n = weight.numel();
  const bool fits = input.dim() >= 1 && input.size(-1) == n && n > 0 &&
                    input.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat &&
                    bias.scalar_type() == at::kFloat && weight.dim() == 1 && bias.dim() == 1 &&
                    bias.numel() == n && input.is_contiguous() && weight.is_contiguous() &&
                    bias.is_contiguous() && input.device().is_cpu() && weight.device().is_cpu() &&
                    bias.device().is_cpu() && input.numel() / n <= small_layer_norm_max_rows() &&
                    !(at::GradMode::is_enabled() &&
                      (input.requires_grad() || weight.requires_grad() || bias.requires_grad()));
  if (!fits) return at::layer_norm(input, {n}, weight, bias, eps);
  at::Tensor output = at::empty_like(input);
  const int64_t rows = input.numel() / n;
  const float* x = input.data_ptr<float>();
  const float* w = weight.data_ptr<float>();
  const float* b = bias.data_ptr<float>();
  float* y = output.data_ptr<float>();
  const auto epsilon = static_cast<float>(eps);
#if defined(__x86_64__)
  const bool vectorized = cpu_has(CpuIsa::kAvx512) && n % 16 == 0;
#else
  const bool vectorized = false;
#endif
  for (int64_t row = 0; row < rows; ++row) {
#if defined(__x86_64__)
    if (vectorized) {
      normalize_avx512(x + row * n, n, w, b, epsilon, y + row * n);
      continue;
    }
#endif
    normalize_generic(x + row * n, n, w, b, epsilon, y + row * n);
  }
  (void)vectorized;
  return output;
}

}  // namespace tsrunner::detail
