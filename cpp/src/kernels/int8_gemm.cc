#include "kernels/int8_gemm.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace tsrunner::detail {
namespace {

constexpr int64_t kBlock = 16;       // output columns per panel: one AVX-512 register
constexpr int64_t kPanelBytes = 64;  // one K-group of a panel: 16 columns x 4 bytes
// Rows per tile: 2 x 8 accumulators, 2 panel registers and the broadcast. At 12 rows (27 of
// the 32 registers) GCC 12 stored the accumulators to the stack every step: half the speed.
constexpr int kMaxTileRows = 8;
constexpr int64_t kChunkRows = 96;       // rows a thread takes at a time when there are many
constexpr int64_t kPrefetchGroups = 64;  // panel rows prefetched ahead: 4 KB

// What a tile needs besides its sums, for the rows and columns it covers.
struct Epilogue {
  const float* row_scales;
  const int32_t* zero_points;
  const float* column_scales;
  const int32_t* column_sums;
  const float* bias;
  const float* residual;  // [rows, n] or null
  float* out;
  int64_t n;
};

// The scale and zero point of a row whose values span [lo, hi] (lo <= 0 <= hi).
void row_scale(float lo, float hi, float* scale, int32_t* zero_point) {
  if (hi - lo <= 0.0f) {
    *scale = 1.0f;
    *zero_point = 0;
    return;
  }
  *scale = (hi - lo) / 255.0f;
  *zero_point = std::clamp(static_cast<int32_t>(std::nearbyint(-lo / *scale)), 0, 255);
}

void quantize_row_generic(const float* x, int64_t k, const float* smooth, uint8_t* q, float* scale,
                          int32_t* zero_point) {
  float lo = 0.0f;
  float hi = 0.0f;
  for (int64_t i = 0; i < k; ++i) {
    const float value = smooth != nullptr ? x[i] * smooth[i] : x[i];
    lo = std::min(lo, value);
    hi = std::max(hi, value);
  }
  row_scale(lo, hi, scale, zero_point);
  const float inverse = 1.0f / *scale;
  for (int64_t i = 0; i < k; ++i) {
    const float value = smooth != nullptr ? x[i] * smooth[i] : x[i];
    const auto level = static_cast<int32_t>(std::nearbyint(value * inverse)) + *zero_point;
    q[i] = static_cast<uint8_t>(std::clamp(level, 0, 255));
  }
}

void gemm_generic(const uint8_t* q, int64_t rows, int64_t groups, const int8_t* panels,
                  const Epilogue& e, const Int8GemmFinish& finish) {
  const int64_t padded_k = groups * 4;
  at::parallel_for(0, rows, 1, [&](int64_t first, int64_t last) {
    for (int64_t m = first; m < last; ++m) {
      const uint8_t* row = q + m * padded_k;
      for (int64_t column = 0; column < e.n; ++column) {
        const int8_t* panel = panels + column / kBlock * groups * kPanelBytes + column % kBlock * 4;
        int32_t sum = 0;
        for (int64_t i = 0; i < padded_k; ++i) {
          sum += static_cast<int32_t>(row[i]) * panel[i / 4 * kPanelBytes + i % 4];
        }
        const float corrected = static_cast<float>(sum - e.zero_points[m] * e.column_sums[column]);
        float offset = e.bias != nullptr ? e.bias[column] : 0.0f;
        if (e.residual != nullptr) offset += e.residual[m * e.n + column];
        e.out[m * e.n + column] =
            std::fma(corrected, e.row_scales[m] * e.column_scales[column], offset);
      }
    }
    if (finish) finish(first, last, 0, e.n);
  });
}

#if defined(__x86_64__)

__attribute__((target("avx512f"))) inline __mmask16 mask_at(int64_t i, int64_t k) {
  return static_cast<__mmask16>(k - i >= 16 ? 0xffff : (1u << (k - i)) - 1u);
}

// x[i, i + 16) (times smooth there), the lanes outside `mask` 0.
__attribute__((target("avx512f"))) inline __m512 load_row(const float* x, const float* smooth,
                                                          int64_t i, __mmask16 mask) {
  const __m512 value = _mm512_maskz_loadu_ps(mask, x + i);
  return smooth != nullptr ? _mm512_mul_ps(value, _mm512_maskz_loadu_ps(mask, smooth + i)) : value;
}

__attribute__((target("avx512f"))) void quantize_row_avx512(const float* x, int64_t k,
                                                            const float* smooth, uint8_t* q,
                                                            float* scale, int32_t* zero_point) {
  __m512 lo = _mm512_setzero_ps();
  __m512 hi = _mm512_setzero_ps();
  for (int64_t i = 0; i < k; i += 16) {  // masked-off lanes load 0, inside [lo, hi] anyway
    const __m512 value = load_row(x, smooth, i, mask_at(i, k));
    lo = _mm512_min_ps(lo, value);
    hi = _mm512_max_ps(hi, value);
  }
  row_scale(_mm512_reduce_min_ps(lo), _mm512_reduce_max_ps(hi), scale, zero_point);
  const __m512 inverse = _mm512_set1_ps(1.0f / *scale);
  const __m512i zero = _mm512_set1_epi32(*zero_point);
  for (int64_t i = 0; i < k; i += 16) {
    // Rounded to nearest even (the default MXCSR mode), as std::nearbyint does; below 0 clamped
    // here, above 255 by the unsigned saturating narrow.
    const __mmask16 mask = mask_at(i, k);
    const __m512i level = _mm512_add_epi32(
        _mm512_cvtps_epi32(_mm512_mul_ps(load_row(x, smooth, i, mask), inverse)), zero);
    _mm512_mask_cvtusepi32_storeu_epi8(q + i, mask,
                                       _mm512_max_epi32(level, _mm512_setzero_si512()));
  }
}

// One row of a tile's sums, scaled, corrected and offset, into out.
__attribute__((target("avx512f"), always_inline)) inline void store_row(__m512i acc,
                                                                        const Epilogue& e,
                                                                        int64_t row, int64_t column,
                                                                        __mmask16 mask) {
  const __m512 column_scales = _mm512_maskz_loadu_ps(mask, e.column_scales + column);
  const __m512i column_sums = _mm512_maskz_loadu_epi32(mask, e.column_sums + column);
  __m512 offset =
      e.bias != nullptr ? _mm512_maskz_loadu_ps(mask, e.bias + column) : _mm512_setzero_ps();
  if (e.residual != nullptr) {
    offset = _mm512_add_ps(offset, _mm512_maskz_loadu_ps(mask, e.residual + row * e.n + column));
  }
  const __m512i correction = _mm512_mullo_epi32(_mm512_set1_epi32(e.zero_points[row]), column_sums);
  const __m512 sum = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc, correction));
  const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(e.row_scales[row]), column_scales);
  _mm512_mask_storeu_ps(e.out + row * e.n + column, mask, _mm512_fmadd_ps(sum, scale, offset));
}

// Row I of a step: 4 bytes of q broadcast, times one or two panels' group.
template <int I, bool Wide>
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) inline void step_row(
    __m512i& left, __m512i& right, const uint8_t* q, __m512i w0, __m512i w1) {
  int32_t four;
  std::memcpy(&four, q + 4 * I, sizeof(four));
  const __m512i x = _mm512_set1_epi32(four);
  left = _mm512_dpbusd_epi32(left, x, w0);
  if constexpr (Wide) right = _mm512_dpbusd_epi32(right, x, w1);
}

// `R` rows of q times one panel (16 columns) or, `Wide`, two adjacent panels. q comes as
// interleave_rows left it, [groups][R][4]: the R rows' 4 bytes of one step side by side, so one
// pointer with constant offsets reaches them all. Each step loads one 64-byte group per panel
// and does R VPDPBUSD with 4 bytes of a row broadcast each; the rows are a fold over constant
// indices, so each accumulator is a register of its own from the start.
template <int R, bool Wide, int... I>
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) inline void tile_rows(
    std::integer_sequence<int, I...>, const uint8_t* q, int64_t groups, const int8_t* panel,
    const Epilogue& e, int64_t row, int64_t column, __mmask16 mask) {
  const int8_t* next = panel + groups * kPanelBytes;
  __m512i left[R] = {(static_cast<void>(I), _mm512_setzero_si512())...};
  __m512i right[R] = {(static_cast<void>(I), _mm512_setzero_si512())...};
  for (int64_t g = 0; g < groups; ++g, q += 4 * R, panel += kPanelBytes, next += kPanelBytes) {
    _mm_prefetch(reinterpret_cast<const char*>(panel + kPrefetchGroups * kPanelBytes), _MM_HINT_T0);
    const __m512i w0 = _mm512_loadu_si512(panel);
    __m512i w1 = w0;
    if constexpr (Wide) {
      _mm_prefetch(reinterpret_cast<const char*>(next + kPrefetchGroups * kPanelBytes),
                   _MM_HINT_T0);
      w1 = _mm512_loadu_si512(next);
    }
    (step_row<I, Wide>(left[I], right[I], q, w0, w1), ...);
  }
  (store_row(left[I], e, row + I, column, Wide ? static_cast<__mmask16>(0xffff) : mask), ...);
  if constexpr (Wide) (store_row(right[I], e, row + I, column + kBlock, mask), ...);
}

template <int R, bool Wide>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void tile(const uint8_t* q, int64_t groups,
                                                                 const int8_t* panel,
                                                                 const Epilogue& e, int64_t row,
                                                                 int64_t column, __mmask16 mask) {
  tile_rows<R, Wide>(std::make_integer_sequence<int, R>(), q, groups, panel, e, row, column, mask);
}

using TileFunction = void (*)(const uint8_t*, int64_t, const int8_t*, const Epilogue&, int64_t,
                              int64_t, __mmask16);

template <bool Wide, int... R>
constexpr auto make_tiles(std::integer_sequence<int, R...>) {
  return std::array<TileFunction, sizeof...(R)>{&tile<R + 1, Wide>...};
}

constexpr auto kTiles = make_tiles<false>(std::make_integer_sequence<int, kMaxTileRows>());
constexpr auto kWideTiles = make_tiles<true>(std::make_integer_sequence<int, kMaxTileRows>());

// Rows [row, row_end) of q (row-major, 4 * groups bytes each) into `out` in the layout tile()
// reads: tiles of kMaxTileRows rows from `row` (the last may have fewer, R), each [groups][R][4].
void interleave_rows(const uint8_t* q, int64_t row, int64_t row_end, int64_t groups, uint8_t* out) {
  for (int64_t first = row; first < row_end; first += kMaxTileRows) {
    const int64_t tile_rows = std::min<int64_t>(kMaxTileRows, row_end - first);
    uint8_t* tile_out = out + (first - row) * groups * 4;
    for (int64_t r = 0; r < tile_rows; ++r) {
      const uint8_t* source = q + (first + r) * groups * 4;
      for (int64_t g = 0; g < groups; ++g) {
        std::memcpy(tile_out + (g * tile_rows + r) * 4, source + g * 4, 4);
      }
    }
  }
}

// Rows [row, row_end) of q, interleaved from `row` in `packed`, times panels [first_block,
// last_block), two panels at a time while there are two.
void run_tiles(const uint8_t* packed, int64_t row, int64_t row_end, int64_t groups,
               const int8_t* panels, int64_t first_block, int64_t last_block, const Epilogue& e) {
  for (int64_t block = first_block; block < last_block;) {
    const bool wide = block + 1 < last_block;
    const int64_t column = block * kBlock;
    const int64_t width = std::min(kBlock, e.n - column - (wide ? kBlock : 0));
    const auto mask = static_cast<__mmask16>((1u << width) - 1u);
    const int8_t* panel = panels + block * groups * kPanelBytes;
    const auto& kernels = wide ? kWideTiles : kTiles;
    for (int64_t r = row; r < row_end; r += kMaxTileRows) {
      const auto tile_rows = static_cast<int>(std::min<int64_t>(kMaxTileRows, row_end - r));
      kernels[tile_rows - 1](packed + (r - row) * groups * 4, groups, panel, e, r, column, mask);
    }
    block += wide ? 2 : 1;
  }
}

#endif

}  // namespace

void quantize_rows_u8(const float* x, int64_t rows, int64_t k, const float* smooth, uint8_t* q,
                      float* scales, int32_t* zero_points, CpuIsa isa) {
  const int64_t padded_k = int8_k_groups(k) * 4;
  at::parallel_for(0, rows, 16, [&](int64_t first, int64_t last) {
    for (int64_t row = first; row < last; ++row) {
      uint8_t* out = q + row * padded_k;
      std::fill(out + k, out + padded_k, uint8_t{0});
#if defined(__x86_64__)
      if (isa >= CpuIsa::kAvx512) {
        quantize_row_avx512(x + row * k, k, smooth, out, scales + row, zero_points + row);
        continue;
      }
#endif
      quantize_row_generic(x + row * k, k, smooth, out, scales + row, zero_points + row);
    }
  });
  (void)isa;
}

void int8_gemm(const uint8_t* q, int64_t rows, int64_t k, const int8_t* panels, int64_t n,
               const float* row_scales, const int32_t* zero_points, const float* column_scales,
               const int32_t* column_sums, const float* bias, const float* residual, float* out,
               const Int8GemmFinish& finish, CpuIsa isa) {
  const Epilogue e{row_scales, zero_points, column_scales, column_sums, bias, residual, out, n};
  const int64_t groups = int8_k_groups(k);
#if defined(__x86_64__)
  if (isa >= CpuIsa::kAvx512Vnni) {
    const int64_t blocks = int8_column_blocks(n);
    const int64_t chunks = (rows + kChunkRows - 1) / kChunkRows;
    const int64_t threads = at::get_num_threads();
    if (threads == 1 || chunks >= 2 * threads) {
      // Many rows: each thread takes blocks of rows (their q stays in its L2) over every panel.
      at::parallel_for(0, chunks, 1, [&](int64_t first, int64_t last) {
        std::vector<uint8_t> packed(static_cast<size_t>(kChunkRows * groups * 4));
        for (int64_t chunk = first; chunk < last; ++chunk) {
          const int64_t row = chunk * kChunkRows;
          const int64_t row_end = std::min(rows, row + kChunkRows);
          interleave_rows(q, row, row_end, groups, packed.data());
          run_tiles(packed.data(), row, row_end, groups, panels, 0, blocks, e);
          if (finish) finish(row, row_end, 0, n);
        }
      });
    } else {
      // Few rows: the threads share the column blocks, each panel read by one thread.
      std::vector<uint8_t> packed(static_cast<size_t>(rows * groups * 4));
      interleave_rows(q, 0, rows, groups, packed.data());
      at::parallel_for(0, blocks, 4, [&](int64_t first, int64_t last) {
        run_tiles(packed.data(), 0, rows, groups, panels, first, last, e);
        if (finish) finish(0, rows, first * kBlock, std::min(n, last * kBlock));
      });
    }
    return;
  }
#endif
  (void)isa;
  gemm_generic(q, rows, groups, panels, e, finish);
}

}  // namespace tsrunner::detail
