#include "kernels/int8_gemm.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/int8_tiles.h"
#include "tsrunner/cpu_info.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace tsrunner::detail {
namespace {

constexpr int64_t kChunkRows = 96;  // rows a thread takes at a time when there are many

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
                  const Int8Epilogue& e, const Int8GemmFinish& finish) {
  const int64_t padded_k = groups * 4;
  at::parallel_for(0, rows, 1, [&](int64_t first, int64_t last) {
    for (int64_t m = first; m < last; ++m) {
      const uint8_t* row = q + m * padded_k;
      for (int64_t column = 0; column < e.n; ++column) {
        const int8_t* panel =
            panels + column / kInt8Block * groups * kInt8PanelBytes + column % kInt8Block * 4;
        int32_t sum = 0;
        for (int64_t i = 0; i < padded_k; ++i) {
          sum += static_cast<int32_t>(row[i]) * panel[i / 4 * kInt8PanelBytes + i % 4];
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

// The same on AVX2 (the AVX-VNNI CPUs have no AVX-512): 8 lanes, the tail in plain C++; the
// same operations per value, so the same bytes.
__attribute__((target("avx2"))) inline float reduce(__m256 v, bool minimum) {
  __m128 half = minimum ? _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1))
                        : _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  alignas(16) float lanes[4];
  _mm_store_ps(lanes, half);
  const float a = minimum ? std::min(lanes[0], lanes[1]) : std::max(lanes[0], lanes[1]);
  const float b = minimum ? std::min(lanes[2], lanes[3]) : std::max(lanes[2], lanes[3]);
  return minimum ? std::min(a, b) : std::max(a, b);
}

__attribute__((target("avx2"))) inline __m256 load8(const float* x, const float* smooth,
                                                    int64_t i) {
  const __m256 value = _mm256_loadu_ps(x + i);
  return smooth != nullptr ? _mm256_mul_ps(value, _mm256_loadu_ps(smooth + i)) : value;
}

__attribute__((target("avx2"))) void quantize_row_avx2(const float* x, int64_t k,
                                                       const float* smooth, uint8_t* q,
                                                       float* scale, int32_t* zero_point) {
  const int64_t whole = k / 8 * 8;
  __m256 lo8 = _mm256_setzero_ps();
  __m256 hi8 = _mm256_setzero_ps();
  for (int64_t i = 0; i < whole; i += 8) {
    const __m256 value = load8(x, smooth, i);
    lo8 = _mm256_min_ps(lo8, value);
    hi8 = _mm256_max_ps(hi8, value);
  }
  float lo = reduce(lo8, true);
  float hi = reduce(hi8, false);
  for (int64_t i = whole; i < k; ++i) {
    const float value = smooth != nullptr ? x[i] * smooth[i] : x[i];
    lo = std::min(lo, value);
    hi = std::max(hi, value);
  }
  row_scale(lo, hi, scale, zero_point);
  const float inverse = 1.0f / *scale;
  const __m256 inverse8 = _mm256_set1_ps(inverse);
  const __m256i zero = _mm256_set1_epi32(*zero_point);
  for (int64_t i = 0; i < whole; i += 8) {
    // Rounded to nearest even, as std::nearbyint; the two saturating packs clamp to 0..255.
    const __m256i level =
        _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(load8(x, smooth, i), inverse8)), zero);
    const __m128i words =
        _mm_packus_epi32(_mm256_castsi256_si128(level), _mm256_extracti128_si256(level, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(q + i), _mm_packus_epi16(words, words));
  }
  for (int64_t i = whole; i < k; ++i) {
    const float value = smooth != nullptr ? x[i] * smooth[i] : x[i];
    const auto level = static_cast<int32_t>(std::nearbyint(value * inverse)) + *zero_point;
    q[i] = static_cast<uint8_t>(std::clamp(level, 0, 255));
  }
}

#endif

// Rows [row, row_end) of q (row-major, 4 * groups bytes each) into `out` in the layout the tiles
// read: tiles of `height` rows from `row` (the last may have fewer, R), each [groups][R][4].
void interleave_rows(const uint8_t* q, int64_t row, int64_t row_end, int64_t groups, int64_t height,
                     uint8_t* out) {
  for (int64_t first = row; first < row_end; first += height) {
    const int64_t tile_rows = std::min<int64_t>(height, row_end - first);
    uint8_t* tile_out = out + (first - row) * groups * 4;
    for (int64_t r = 0; r < tile_rows; ++r) {
      const uint8_t* source = q + (first + r) * groups * 4;
      for (int64_t g = 0; g < groups; ++g) {
        std::memcpy(tile_out + (g * tile_rows + r) * 4, source + g * 4, 4);
      }
    }
  }
}

// The tiles of a VNNI body and their height.
struct Tiles {
  Int8TileRunner run;
  int64_t height;
};

// Work shared among the threads, the tiles doing the sums.
void gemm_tiles(const uint8_t* q, int64_t rows, int64_t groups, const int8_t* panels,
                const Int8Epilogue& e, const Int8GemmFinish& finish, Tiles tiles) {
  const int64_t n = e.n;
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
        interleave_rows(q, row, row_end, groups, tiles.height, packed.data());
        tiles.run(packed.data(), row, row_end, groups, panels, 0, blocks, e);
        if (finish) finish(row, row_end, 0, n);
      }
    });
  } else {
    // Few rows: the threads share the column blocks, each panel read by one thread.
    std::vector<uint8_t> packed(static_cast<size_t>(rows * groups * 4));
    interleave_rows(q, 0, rows, groups, tiles.height, packed.data());
    at::parallel_for(0, blocks, 4, [&](int64_t first, int64_t last) {
      tiles.run(packed.data(), 0, rows, groups, panels, first, last, e);
      if (finish) finish(0, rows, first * kInt8Block, std::min(n, last * kInt8Block));
    });
  }
}

bool avx512_vnni_256_runs_here() {
  return cpu_has(CpuIsa::kAvx512Vnni) && cpu_info().has_flag("avx512vl");
}

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
      if (isa >= CpuIsa::kAvx2) {
        quantize_row_avx2(x + row * k, k, smooth, out, scales + row, zero_points + row);
        continue;
      }
#endif
      quantize_row_generic(x + row * k, k, smooth, out, scales + row, zero_points + row);
    }
  });
  (void)isa;
}

Int8Kernel int8_kernel() {
  const char* hook = std::getenv("TSR_TEST_INT8_KERNEL");
  if (hook == nullptr || *hook == '\0') {
    if (cpu_has(CpuIsa::kAvx512Vnni)) return Int8Kernel::kAvx512Vnni;
    if (cpu_has_avx_vnni()) return Int8Kernel::kAvxVnni;
    return Int8Kernel::kGeneric;
  }
  const std::string wanted = hook;
  Int8Kernel kernel = Int8Kernel::kGeneric;
  if (wanted == "avx512_vnni") {
    kernel = Int8Kernel::kAvx512Vnni;
  } else if (wanted == "avx_vnni") {
    kernel = cpu_has_avx_vnni() || !avx512_vnni_256_runs_here() ? Int8Kernel::kAvxVnni
                                                                : Int8Kernel::kAvx512Vnni256;
  } else if (wanted != "generic") {
    throw std::invalid_argument(
        "TSR_TEST_INT8_KERNEL must be avx512_vnni, avx_vnni or generic, not " + wanted);
  }
  if (!int8_kernel_runs_here(kernel)) {
    throw std::invalid_argument("TSR_TEST_INT8_KERNEL=" + wanted + ": this CPU (" +
                                cpu_info().model + ") cannot run the " + int8_kernel_name(kernel) +
                                " int8 kernel");
  }
  return kernel;
}

bool int8_kernel_runs_here(Int8Kernel kernel) {
  switch (kernel) {
    case Int8Kernel::kGeneric:
      return true;
    case Int8Kernel::kAvxVnni:
      return cpu_has_avx_vnni();
    case Int8Kernel::kAvx512Vnni256:
      return avx512_vnni_256_runs_here();
    case Int8Kernel::kAvx512Vnni:
      return cpu_has(CpuIsa::kAvx512Vnni);
  }
  return false;
}

std::string int8_kernel_name(Int8Kernel kernel) {
  switch (kernel) {
    case Int8Kernel::kGeneric:
      return "plain C++";
    case Int8Kernel::kAvxVnni:
      return "AVX-VNNI";
    case Int8Kernel::kAvx512Vnni256:
      return "AVX-VNNI tiles EVEX-encoded on AVX512-VNNI";
    case Int8Kernel::kAvx512Vnni:
      return "AVX512-VNNI";
  }
  return "plain C++";
}

void int8_gemm(const uint8_t* q, int64_t rows, int64_t k, const int8_t* panels, int64_t n,
               const float* row_scales, const int32_t* zero_points, const float* column_scales,
               const int32_t* column_sums, const float* bias, const float* residual, float* out,
               const Int8GemmFinish& finish, Int8Kernel kernel) {
  const Int8Epilogue e{row_scales, zero_points, column_scales, column_sums, bias, residual, out, n};
  const int64_t groups = int8_k_groups(k);
#if defined(__x86_64__)
  switch (kernel) {
    case Int8Kernel::kAvx512Vnni:
      return gemm_tiles(q, rows, groups, panels, e, finish,
                        {run_int8_tiles_avx512_vnni, kInt8TileRows512});
    case Int8Kernel::kAvxVnni:
      return gemm_tiles(q, rows, groups, panels, e, finish,
                        {run_int8_tiles_avx_vnni, kInt8TileRows256});
    case Int8Kernel::kAvx512Vnni256:
      return gemm_tiles(q, rows, groups, panels, e, finish,
                        {run_int8_tiles_avx512_vnni_256, kInt8TileRows256});
    case Int8Kernel::kGeneric:
      break;
  }
#endif
  (void)kernel;
  gemm_generic(q, rows, groups, panels, e, finish);
}

}  // namespace tsrunner::detail
