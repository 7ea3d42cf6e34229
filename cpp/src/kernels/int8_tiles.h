#pragma once

#include <cstdint>

namespace tsrunner::detail {

// What int8_gemm.cc's driver (threads, row chunks, interleaved rows) shares with the tile bodies
// it calls: the 512-bit tiles (int8_tiles_avx512.cc) and the 256-bit ones (int8_tiles256.h).

constexpr int64_t kInt8Block = 16;           // output columns per panel (kernels/int8_gemm.h)
constexpr int64_t kInt8PanelBytes = 64;      // one K-group of a panel: 16 columns x 4 bytes
constexpr int64_t kInt8PrefetchGroups = 64;  // panel rows prefetched ahead: 4 KB

// Rows per tile. 512-bit: 2 x 8 accumulators, 2 panel registers and the broadcast (at 12 rows,
// 27 of the 32 registers, GCC 12 stored the accumulators to the stack every step: half the
// speed). 256-bit: a panel is two registers, so R rows are 2R accumulators, 2 panel halves and
// the broadcast; with 16 registers GCC 12 kept 4 rows in registers, spilled at 5 and 6.
constexpr int64_t kInt8TileRows512 = 8;
constexpr int64_t kInt8TileRows256 = 4;

// What a tile needs besides its sums, for the rows and columns it covers.
struct Int8Epilogue {
  const float* row_scales;
  const int32_t* zero_points;
  const float* column_scales;
  const int32_t* column_sums;
  const float* bias;
  const float* residual;  // [rows, n] or null
  float* out;
  int64_t n;
};

// Rows [row, row_end) of q, interleaved in `packed` from `row` in tiles of the body's height
// (each tile [groups][tile rows][4]: the rows' 4 bytes of one step side by side), times panels
// [first_block, last_block), into e.out with the epilogue applied.
using Int8TileRunner = void (*)(const uint8_t* packed, int64_t row, int64_t row_end, int64_t groups,
                                const int8_t* panels, int64_t first_block, int64_t last_block,
                                const Int8Epilogue& e);

#if defined(__x86_64__)
// 512-bit tiles, kInt8TileRows512 rows, one or two panels at a time (AVX512-VNNI).
void run_int8_tiles_avx512_vnni(const uint8_t* packed, int64_t row, int64_t row_end, int64_t groups,
                                const int8_t* panels, int64_t first_block, int64_t last_block,
                                const Int8Epilogue& e);
// 256-bit tiles, kInt8TileRows256 rows, one panel (two registers) at a time: VEX VPDPBUSD
// (AVX-VNNI) ...
void run_int8_tiles_avx_vnni(const uint8_t* packed, int64_t row, int64_t row_end, int64_t groups,
                             const int8_t* panels, int64_t first_block, int64_t last_block,
                             const Int8Epilogue& e);
// ... and the same tiles with EVEX VPDPBUSD (AVX512-VNNI + AVX512VL): the 256-bit code run
// natively on an AVX-512 CPU, for the tests and for comparisons.
void run_int8_tiles_avx512_vnni_256(const uint8_t* packed, int64_t row, int64_t row_end,
                                    int64_t groups, const int8_t* panels, int64_t first_block,
                                    int64_t last_block, const Int8Epilogue& e);
#endif

}  // namespace tsrunner::detail
