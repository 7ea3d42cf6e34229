#pragma once

// The int8 GEMM's 256-bit tiles, written once for two encodings of VPDPBUSD: `Dot` supplies the
// instruction (VEX for AVX-VNNI CPUs, EVEX for AVX-512 ones), everything else is common. A file
// defines TSR_INT8_256_TARGET (a target attribute's string) and includes this, so every function
// here is compiled for that instruction set (GCC and clang; clang ignores `#pragma GCC target`);
// the anonymous namespace gives each file its own copy (one shared inline copy could be the EVEX
// one, an illegal instruction on an AVX-VNNI CPU).
//
// The weights are the panels the AVX-512 tiles read (kernels/int8_gemm.h): one 64-byte group of
// a panel is two registers here, columns 0-7 and 8-15, so an archive runs on either CPU as is.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "kernels/int8_tiles.h"

#ifndef TSR_INT8_256_TARGET
#error "define TSR_INT8_256_TARGET, the tiles' instruction set, before including int8_tiles256.h"
#endif
#define TSR_INT8_256 __attribute__((target(TSR_INT8_256_TARGET)))

namespace tsrunner::detail {
namespace {

// Lanes [0, width) of 8 (AVX2 masked loads and stores read each 32-bit lane's sign bit).
TSR_INT8_256 inline __m256i lanes_below(int64_t width) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(width)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

TSR_INT8_256 inline __m256 load_ps(const float* from, int64_t width, __m256i mask) {
  return width >= 8 ? _mm256_loadu_ps(from) : _mm256_maskload_ps(from, mask);
}

// 8 sums of one row (half a panel), scaled, corrected and offset into out: the 512-bit
// store_row's operations in the same order, so both give the same bits.
TSR_INT8_256 inline void store_half(__m256i acc, const Int8Epilogue& e, int64_t row, int64_t column,
                                    int64_t width) {
  const __m256i mask = lanes_below(width);
  const __m256 column_scales = load_ps(e.column_scales + column, width, mask);
  const __m256i column_sums =
      width >= 8 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(e.column_sums + column))
                 : _mm256_maskload_epi32(e.column_sums + column, mask);
  __m256 offset = e.bias != nullptr ? load_ps(e.bias + column, width, mask) : _mm256_setzero_ps();
  if (e.residual != nullptr) {
    offset = _mm256_add_ps(offset, load_ps(e.residual + row * e.n + column, width, mask));
  }
  const __m256i correction = _mm256_mullo_epi32(_mm256_set1_epi32(e.zero_points[row]), column_sums);
  const __m256 sum = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc, correction));
  const __m256 scale = _mm256_mul_ps(_mm256_set1_ps(e.row_scales[row]), column_scales);
  const __m256 value = _mm256_fmadd_ps(sum, scale, offset);
  float* to = e.out + row * e.n + column;
  if (width >= 8) {
    _mm256_storeu_ps(to, value);
  } else {
    _mm256_maskstore_ps(to, mask, value);
  }
}

// Row I of a step: 4 bytes of q broadcast, times both halves of the panel's group.
template <class Dot, int I>
TSR_INT8_256 __attribute__((always_inline)) inline void step_row(__m256i& low, __m256i& high,
                                                                 const uint8_t* q, __m256i w_low,
                                                                 __m256i w_high) {
  int32_t four;
  std::memcpy(&four, q + 4 * I, sizeof(four));
  const __m256i x = _mm256_set1_epi32(four);
  low = Dot::dot(low, x, w_low);
  high = Dot::dot(high, x, w_high);
}

// `R` rows of q (interleaved, [groups][R][4]) times one panel of `width` columns: per step one
// 64-byte group in two loads and 2R VPDPBUSD, the accumulators registers of their own as in the
// 512-bit tiles.
template <class Dot, int R, int... I>
TSR_INT8_256 __attribute__((always_inline)) inline void tile_rows(
    std::integer_sequence<int, I...>, const uint8_t* q, int64_t groups, const int8_t* panel,
    const Int8Epilogue& e, int64_t row, int64_t column, int64_t width) {
  __m256i low[R] = {(static_cast<void>(I), _mm256_setzero_si256())...};
  __m256i high[R] = {(static_cast<void>(I), _mm256_setzero_si256())...};
  for (int64_t g = 0; g < groups; ++g, q += 4 * R, panel += kInt8PanelBytes) {
    _mm_prefetch(reinterpret_cast<const char*>(panel + kInt8PrefetchGroups * kInt8PanelBytes),
                 _MM_HINT_T0);
    const __m256i w_low = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel));
    const __m256i w_high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + 32));
    (step_row<Dot, I>(low[I], high[I], q, w_low, w_high), ...);
  }
  (store_half(low[I], e, row + I, column, std::min<int64_t>(width, 8)), ...);
  if (width > 8) (store_half(high[I], e, row + I, column + 8, width - 8), ...);
}

template <class Dot, int R>
TSR_INT8_256 void tile(const uint8_t* q, int64_t groups, const int8_t* panel, const Int8Epilogue& e,
                       int64_t row, int64_t column, int64_t width) {
  tile_rows<Dot, R>(std::make_integer_sequence<int, R>(), q, groups, panel, e, row, column, width);
}

using TileFunction = void (*)(const uint8_t*, int64_t, const int8_t*, const Int8Epilogue&, int64_t,
                              int64_t, int64_t);

template <class Dot, int... R>
constexpr auto make_tiles(std::integer_sequence<int, R...>) {
  return std::array<TileFunction, sizeof...(R)>{&tile<Dot, R + 1>...};
}

// kernels/int8_tiles.h's Int8TileRunner on these tiles, one panel at a time.
template <class Dot>
void run_tiles256(const uint8_t* packed, int64_t row, int64_t row_end, int64_t groups,
                  const int8_t* panels, int64_t first_block, int64_t last_block,
                  const Int8Epilogue& e) {
  static constexpr auto kTiles =
      make_tiles<Dot>(std::make_integer_sequence<int, kInt8TileRows256>());
  for (int64_t block = first_block; block < last_block; ++block) {
    const int64_t column = block * kInt8Block;
    const int64_t width = std::min(kInt8Block, e.n - column);
    const int8_t* panel = panels + block * groups * kInt8PanelBytes;
    for (int64_t r = row; r < row_end; r += kInt8TileRows256) {
      const auto tile_rows = static_cast<int>(std::min<int64_t>(kInt8TileRows256, row_end - r));
      kTiles[tile_rows - 1](packed + (r - row) * groups * 4, groups, panel, e, r, column, width);
    }
  }
}

}  // namespace
}  // namespace tsrunner::detail

#undef TSR_INT8_256
