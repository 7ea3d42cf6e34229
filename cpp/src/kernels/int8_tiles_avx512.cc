// The int8 GEMM's 512-bit tiles (AVX512-VNNI): kernels/int8_tiles.h gives the contract.
#include "kernels/int8_tiles.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

namespace tsrunner::detail {
namespace {

// One row of a tile's sums, scaled, corrected and offset, into out.
__attribute__((target("avx512f"), always_inline)) inline void store_row(__m512i acc,
                                                                        const Int8Epilogue& e,
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

// `R` rows of q times one panel (16 columns) or, `Wide`, two adjacent panels. q comes
// interleaved, [groups][R][4], so one pointer with constant offsets reaches every row. Each step
// loads one 64-byte group per panel and does R VPDPBUSD with 4 bytes of a row broadcast each;
// the rows are a fold over constant indices, so each accumulator is a register of its own.
template <int R, bool Wide, int... I>
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) inline void tile_rows(
    std::integer_sequence<int, I...>, const uint8_t* q, int64_t groups, const int8_t* panel,
    const Int8Epilogue& e, int64_t row, int64_t column, __mmask16 mask) {
  const int8_t* next = panel + groups * kInt8PanelBytes;
  __m512i left[R] = {(static_cast<void>(I), _mm512_setzero_si512())...};
  __m512i right[R] = {(static_cast<void>(I), _mm512_setzero_si512())...};
  for (int64_t g = 0; g < groups;
       ++g, q += 4 * R, panel += kInt8PanelBytes, next += kInt8PanelBytes) {
    _mm_prefetch(reinterpret_cast<const char*>(panel + kInt8PrefetchGroups * kInt8PanelBytes),
                 _MM_HINT_T0);
    const __m512i w0 = _mm512_loadu_si512(panel);
    __m512i w1 = w0;
    if constexpr (Wide) {
      _mm_prefetch(reinterpret_cast<const char*>(next + kInt8PrefetchGroups * kInt8PanelBytes),
                   _MM_HINT_T0);
      w1 = _mm512_loadu_si512(next);
    }
    (step_row<I, Wide>(left[I], right[I], q, w0, w1), ...);
  }
  (store_row(left[I], e, row + I, column, Wide ? static_cast<__mmask16>(0xffff) : mask), ...);
  if constexpr (Wide) (store_row(right[I], e, row + I, column + kInt8Block, mask), ...);
}

template <int R, bool Wide>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void tile(const uint8_t* q, int64_t groups,
                                                                 const int8_t* panel,
                                                                 const Int8Epilogue& e, int64_t row,
                                                                 int64_t column, __mmask16 mask) {
  tile_rows<R, Wide>(std::make_integer_sequence<int, R>(), q, groups, panel, e, row, column, mask);
}

using TileFunction = void (*)(const uint8_t*, int64_t, const int8_t*, const Int8Epilogue&, int64_t,
                              int64_t, __mmask16);

template <bool Wide, int... R>
constexpr auto make_tiles(std::integer_sequence<int, R...>) {
  return std::array<TileFunction, sizeof...(R)>{&tile<R + 1, Wide>...};
}

constexpr auto kTiles = make_tiles<false>(std::make_integer_sequence<int, kInt8TileRows512>());
constexpr auto kWideTiles = make_tiles<true>(std::make_integer_sequence<int, kInt8TileRows512>());

}  // namespace

// Two panels at a time while there are two.
void run_int8_tiles_avx512_vnni(const uint8_t* packed, int64_t row, int64_t row_end, int64_t groups,
                                const int8_t* panels, int64_t first_block, int64_t last_block,
                                const Int8Epilogue& e) {
  for (int64_t block = first_block; block < last_block;) {
    const bool wide = block + 1 < last_block;
    const int64_t column = block * kInt8Block;
    const int64_t width = std::min(kInt8Block, e.n - column - (wide ? kInt8Block : 0));
    const auto mask = static_cast<__mmask16>((1u << width) - 1u);
    const int8_t* panel = panels + block * groups * kInt8PanelBytes;
    const auto& kernels = wide ? kWideTiles : kTiles;
    for (int64_t r = row; r < row_end; r += kInt8TileRows512) {
      const auto tile_rows = static_cast<int>(std::min<int64_t>(kInt8TileRows512, row_end - r));
      kernels[tile_rows - 1](packed + (r - row) * groups * 4, groups, panel, e, r, column, mask);
    }
    block += wide ? 2 : 1;
  }
}

}  // namespace tsrunner::detail
#endif
