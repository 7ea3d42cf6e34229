#include "kernels/bf16_gemm.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <array>
#include <utility>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kernels/cpu_isa.h"
#include "kernels/gemm_tile_store.h"

namespace tsrunner::detail {
namespace {

constexpr int64_t kBlock = 16;          // output columns per panel: one AVX-512 register
constexpr int kMaxTileRows = 12;        // rows per tile: 2 x 12 accumulators of the 32 registers
constexpr int64_t kChunkRows = 72;      // rows a thread rounds to bf16 and keeps in its L2: 6 tiles
constexpr int64_t kPrefetchPairs = 64;  // panel rows (64 B) prefetched ahead: 4 KB

#if defined(__x86_64__)

// One tile: `R` rows of x times one panel (16 columns), plus bias and residual, stored with
// `mask` selecting the columns that exist. x comes as pack_rows left it, [pairs][R]: the R
// pairs of one step sit side by side, so one pointer with constant offsets reaches them all
// (row pointers would take 16 registers and spill). Each step loads one 64-byte panel row
// (16 columns x one K-pair) and does R VDPBF16PS with one pair of x broadcast each.
template <int R>
__attribute__((target("avx512f,avx512bf16"))) void tile(const uint32_t* x, int64_t pairs,
                                                        const uint32_t* panel, const float* bias,
                                                        const float* residual, float* out,
                                                        int64_t n, __mmask16 mask) {
  __m512 acc[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t step = 0; step < pairs; ++step, x += R, panel += kBlock) {
    _mm_prefetch(reinterpret_cast<const char*>(panel + kPrefetchPairs * kBlock), _MM_HINT_T0);
    const __m512bh w = (__m512bh)_mm512_loadu_si512(panel);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      acc[r] = _mm512_dpbf16_ps(acc[r], (__m512bh)_mm512_set1_epi32(static_cast<int>(x[r])), w);
    }
  }
  store_tile<R>(acc, bias, residual, out, n, mask);
}

// Two panels (32 columns) at once: each broadcast pair of x feeds two VDPBF16PS, halving the
// broadcasts per multiply-add of the one-panel tile.
template <int R>
__attribute__((target("avx512f,avx512bf16"))) void wide_tile(const uint32_t* x, int64_t pairs,
                                                             const uint32_t* panel,
                                                             const float* bias,
                                                             const float* residual, float* out,
                                                             int64_t n, __mmask16 mask) {
  __m512 left[R];
  __m512 right[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) left[r] = right[r] = _mm512_setzero_ps();
  const uint32_t* next = panel + pairs * kBlock;
  for (int64_t step = 0; step < pairs; ++step, x += R, panel += kBlock, next += kBlock) {
    _mm_prefetch(reinterpret_cast<const char*>(panel + kPrefetchPairs * kBlock), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(next + kPrefetchPairs * kBlock), _MM_HINT_T0);
    const __m512bh w0 = (__m512bh)_mm512_loadu_si512(panel);
    const __m512bh w1 = (__m512bh)_mm512_loadu_si512(next);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512bh pair = (__m512bh)_mm512_set1_epi32(static_cast<int>(x[r]));
      left[r] = _mm512_dpbf16_ps(left[r], pair, w0);
      right[r] = _mm512_dpbf16_ps(right[r], pair, w1);
    }
  }
  store_tile<R>(left, bias, residual, out, n, static_cast<__mmask16>(0xffff));
  store_tile<R>(right, bias ? bias + kBlock : nullptr, residual ? residual + kBlock : nullptr,
                out + kBlock, n, mask);
}

using TileFunction = void (*)(const uint32_t*, int64_t, const uint32_t*, const float*, const float*,
                              float*, int64_t, __mmask16);

template <int... R>
constexpr auto make_tiles(std::integer_sequence<int, R...>) {
  return std::array<TileFunction, sizeof...(R)>{&tile<R + 1>...};
}

constexpr auto kTiles = make_tiles(std::make_integer_sequence<int, kMaxTileRows>());

template <int... R>
constexpr auto make_wide_tiles(std::integer_sequence<int, R...>) {
  return std::array<TileFunction, sizeof...(R)>{&wide_tile<R + 1>...};
}

constexpr auto kWideTiles = make_wide_tiles(std::make_integer_sequence<int, kMaxTileRows>());

// Rounds `rows` rows of x (k floats each) to bf16, nearest-even (VCVTNE2PS2BF16, which also
// flushes denormal inputs to zero, as VDPBF16PS would treat them anyway), into
// the layout the tiles read: each tile of up to 12 rows is [pairs][tile rows] (an odd k's last
// pair gets a zero high half). `row_pairs` is scratch for one row.
__attribute__((target("avx512f,avx512bf16"))) void pack_rows(const float* x, int64_t rows,
                                                             int64_t k, int64_t pairs,
                                                             uint32_t* out, uint32_t* row_pairs) {
  auto* row_bf16 = reinterpret_cast<uint16_t*>(row_pairs);
  for (int64_t row = 0; row < rows; ++row) {
    const float* source = x + row * k;
    int64_t i = 0;
    for (; i + 32 <= k; i += 32) {
      const __m512bh both =
          _mm512_cvtne2ps_pbh(_mm512_loadu_ps(source + i + 16), _mm512_loadu_ps(source + i));
      _mm512_storeu_si512(row_bf16 + i, (__m512i)both);
    }
    for (; i < k; ++i) row_bf16[i] = c10::BFloat16(source[i]).x;
    if (k % 2 != 0) row_bf16[k] = 0;
    const int64_t tile_start = row / kMaxTileRows * kMaxTileRows;
    const int64_t tile_rows = std::min<int64_t>(kMaxTileRows, rows - tile_start);
    uint32_t* target = out + tile_start * pairs + (row - tile_start);
    for (int64_t pair = 0; pair < pairs; ++pair) target[pair * tile_rows] = row_pairs[pair];
  }
}

// x's rows [row, row + rows) times panels [first_block, last_block), into out.
void tiles(const uint32_t* x_pairs, int64_t rows, int64_t pairs, const uint32_t* panels,
           int64_t first_block, int64_t last_block, int64_t n, const float* bias,
           const float* residual, float* out) {
  for (int64_t block = first_block; block < last_block;) {
    const bool wide = block + 1 < last_block;  // two panels at a time while there are two
    const int64_t column = block * kBlock;
    const int64_t width = std::min(kBlock, n - column - (wide ? kBlock : 0));
    const auto mask = static_cast<__mmask16>((1u << width) - 1u);
    const uint32_t* panel = panels + block * pairs * kBlock;
    const auto& kernels = wide ? kWideTiles : kTiles;
    for (int64_t row = 0; row < rows; row += kMaxTileRows) {
      const auto tile_rows = static_cast<int>(std::min<int64_t>(kMaxTileRows, rows - row));
      kernels[tile_rows - 1](x_pairs + row * pairs, pairs, panel, bias ? bias + column : nullptr,
                             residual ? residual + row * n + column : nullptr,
                             out + row * n + column, n, mask);
    }
    block += wide ? 2 : 1;
  }
}

#endif

}  // namespace

bool bf16_gemm_supported() {
#if defined(__x86_64__)
  return cpu_has(CpuIsa::kAvx512Bf16);
#else
  return false;
#endif
}

at::Tensor pack_bf16_panels(const at::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 2 && weight.scalar_type() == at::kFloat,
              "pack_bf16_panels expects a 2-D float32 weight");
  const int64_t n = weight.size(0);
  const int64_t k = weight.size(1);
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  const int64_t pairs = (k + 1) / 2;
  at::Tensor padded =
      at::zeros({blocks * kBlock, pairs * 2}, weight.options().dtype(at::kBFloat16));
  padded.narrow(0, 0, n).narrow(1, 0, k).copy_(weight);  // rounds to nearest even
  // [blocks, 16, pairs, 2] -> [blocks, pairs, 16, 2]
  return padded.view({blocks, kBlock, pairs, 2}).transpose(1, 2).contiguous();
}

void bf16_gemm(const float* x, int64_t rows, int64_t k, const at::BFloat16* panels_bf16, int64_t n,
               const float* bias, const float* residual, float* out, const Bf16GemmFinish& finish) {
#if defined(__x86_64__)
  const int64_t pairs = (k + 1) / 2;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  const auto* panels = reinterpret_cast<const uint32_t*>(panels_bf16);
  const int64_t chunks = (rows + kChunkRows - 1) / kChunkRows;
  const int64_t threads = at::get_num_threads();
  if (threads == 1 || chunks >= 2 * threads) {
    // Many rows (or one thread): each thread takes blocks of 72 rows, rounds them to bf16 into
    // a buffer that stays in its L2, and runs every panel over them. At least two blocks per
    // thread, or the last thread's short block leaves the others waiting.
    at::parallel_for(0, chunks, 1, [&](int64_t first, int64_t last) {
      std::vector<uint32_t> x_pairs(static_cast<size_t>(kChunkRows * pairs));
      std::vector<uint32_t> row_pairs(static_cast<size_t>(pairs));
      for (int64_t chunk = first; chunk < last; ++chunk) {
        const int64_t row = chunk * kChunkRows;
        const int64_t count = std::min(kChunkRows, rows - row);
        pack_rows(x + row * k, count, k, pairs, x_pairs.data(), row_pairs.data());
        tiles(x_pairs.data(), count, pairs, panels, 0, blocks, n, bias,
              residual ? residual + row * n : nullptr, out + row * n);
        if (finish) finish(row, row + count);
      }
    });
    return;
  }
  // Few rows: x is rounded once and the threads share the column blocks, as small_gemm does.
  std::vector<uint32_t> x_pairs(static_cast<size_t>(rows * pairs));
  std::vector<uint32_t> row_pairs(static_cast<size_t>(pairs));
  pack_rows(x, rows, k, pairs, x_pairs.data(), row_pairs.data());
  at::parallel_for(0, blocks, 4, [&](int64_t first, int64_t last) {
    tiles(x_pairs.data(), rows, pairs, panels, first, last, n, bias, residual, out);
  });
  // On the same 72-row blocks as above, not per thread over its columns: LibTorch's elementwise
  // kernels round the vector body and the scalar tail of a piece differently, so the pieces
  // must not depend on the thread count (inside the parallel region each runs as one piece).
  if (finish) {
    at::parallel_for(0, chunks, 1, [&](int64_t first, int64_t last) {
      for (int64_t chunk = first; chunk < last; ++chunk) {
        const int64_t row = chunk * kChunkRows;
        finish(row, std::min(rows, row + kChunkRows));
      }
    });
  }
#else
  (void)x, (void)rows, (void)k, (void)panels_bf16, (void)n, (void)bias, (void)residual, (void)out,
      (void)finish;
  TORCH_CHECK(false, "the bf16 GEMM needs x86-64 with AVX512_BF16");
#endif
}

}  // namespace tsrunner::detail
