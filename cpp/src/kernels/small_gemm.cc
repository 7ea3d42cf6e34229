#include "kernels/small_gemm.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <string>
#include <utility>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kernels/cpu_isa.h"
#include "kernels/gemm_tile_store.h"
#include "tsrunner/errors.h"

namespace tsrunner::detail {
namespace {

constexpr int64_t kBlock = 16;    // output columns per panel: one AVX-512 register
constexpr int kMaxTileRows = 16;  // rows per tile: 16 accumulators of the 32 registers
// Panel rows (64 B each) prefetched ahead: 4 KB, about one memory latency of FMA work.
constexpr int64_t kPrefetchK = 64;

#if defined(__x86_64__)

// One tile: `R` rows of x times one panel (16 columns), plus bias and residual, stored with
// `mask` selecting the columns that exist. Each step of k loads one 64-byte panel row and does
// R fused multiply-adds with x's values broadcast: the weight is read once for all R rows.
template <int R>
__attribute__((target("avx512f"))) void tile(const float* x, int64_t k, const float* panel,
                                             const float* bias, const float* residual, float* out,
                                             int64_t n, __mmask16 mask) {
  __m512 acc[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t step = 0; step < k; ++step) {
    // Past the panel's end this prefetches the next panel, which the thread reads next.
    _mm_prefetch(reinterpret_cast<const char*>(panel + (step + kPrefetchK) * kBlock), _MM_HINT_T0);
    const __m512 w = _mm512_loadu_ps(panel + step * kBlock);  // as fast when aligned
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(x[r * k + step]), w, acc[r]);
    }
  }
  store_tile<R>(acc, bias, residual, out, n, mask);
}

using TileFunction = void (*)(const float*, int64_t, const float*, const float*, const float*,
                              float*, int64_t, __mmask16);

template <int... R>
constexpr auto make_tiles(std::integer_sequence<int, R...>) {
  return std::array<TileFunction, sizeof...(R)>{&tile<R + 1>...};
}

constexpr auto kTiles = make_tiles(std::make_integer_sequence<int, kMaxTileRows>());

#endif

}  // namespace

bool small_gemm_supported() {
#if defined(__x86_64__)
  return cpu_has(CpuIsa::kAvx512);
#else
  return false;
#endif
}

at::Tensor pack_panels(const at::Tensor& weight_any_layout) {
  TORCH_CHECK(weight_any_layout.dim() == 2 && weight_any_layout.scalar_type() == at::kFloat,
              "pack_panels expects a 2-D float32 weight");
  const at::Tensor weight = weight_any_layout.contiguous();
  const int64_t n = weight.size(0);
  const int64_t k = weight.size(1);
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  const int64_t whole = n / kBlock;
  // Copied straight into place: no padded temporary, load's peak memory is the point.
  at::Tensor panels = at::zeros({blocks, k, kBlock}, weight.options());
  if (whole > 0) {
    panels.narrow(0, 0, whole)
        .copy_(weight.narrow(0, 0, whole * kBlock).view({whole, kBlock, k}).transpose(1, 2));
  }
  if (whole < blocks) {  // the last, partial block: its missing columns stay zero
    panels.select(0, whole)
        .narrow(1, 0, n - whole * kBlock)
        .copy_(weight.narrow(0, whole * kBlock, n - whole * kBlock).t());
  }
  return panels;
}

void small_gemm(const float* x, int64_t rows, int64_t k, const float* panels, int64_t n,
                const float* bias, const float* residual, float* out,
                const std::function<void(int64_t, int64_t)>& finish) {
#if defined(__x86_64__)
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  // Each thread takes a run of whole panels, at least 4 (a 384-wide layer splits 12 + 12).
  at::parallel_for(0, blocks, 4, [&](int64_t first, int64_t last) {
    for (int64_t block = first; block < last; ++block) {
      const int64_t column = block * kBlock;
      const int64_t width = std::min(kBlock, n - column);
      const auto mask = static_cast<__mmask16>((1u << width) - 1u);
      const float* panel = panels + block * k * kBlock;
      for (int64_t row = 0; row < rows; row += kMaxTileRows) {
        const auto tile_rows = static_cast<int>(std::min<int64_t>(kMaxTileRows, rows - row));
        kTiles[tile_rows - 1](x + row * k, k, panel, bias ? bias + column : nullptr,
                              residual ? residual + row * n + column : nullptr,
                              out + row * n + column, n, mask);
      }
    }
    if (finish) finish(first * kBlock, std::min(last * kBlock, n));
  });
#else
  (void)x, (void)rows, (void)k, (void)panels, (void)n, (void)bias, (void)residual, (void)out,
      (void)finish;
  TORCH_CHECK(false, "the small-row GEMM needs x86-64 with AVX-512");
#endif
}

}  // namespace tsrunner::detail
