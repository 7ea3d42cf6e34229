#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "kernels/cpu_isa.h"

namespace tsrunner::detail {

// tsrunner's int8 Linear (export --quantize int8): weights quantized per output channel at
// export (symmetric s8, stored packed in the archive: the only copy), activations per row at
// run time (asymmetric u8: a row's min..max over 256 levels, so a GELU output that is mostly
// positive keeps all 8 bits), u8 x s8 products summed in int32 by VPDPBUSD (AVX512-VNNI on
// 512-bit registers, AVX-VNNI on 256-bit ones), and
// y = x_scale[m] * w_scale[n] * (sum_k q[m,k] w[n,k] - zero_point[m] * w_sum[n]) + bias[n].
// CPUs without either run the same integer sums in plain C++: slow. Every body gives the same
// bits: the sums are exact and the epilogue's float operations come in the same order.

// Panels of 16 output columns by groups of 4 along K (what one VPDPBUSD multiplies):
// [ceil(N/16), ceil(K/4), 16, 4] int8, zero where N or K run out.
inline int64_t int8_k_groups(int64_t k) { return (k + 3) / 4; }
inline int64_t int8_column_blocks(int64_t n) { return (n + 15) / 16; }

// The GEMM's bodies. AVX-VNNI is not on the CpuIsa ladder (kernels/cpu_isa.h): Zen 4 has
// AVX512-VNNI without it, Alder Lake it without AVX-512.
enum class Int8Kernel {
  kGeneric,        // plain C++: any CPU
  kAvxVnni,        // 256-bit tiles, VEX VPDPBUSD (AVX-VNNI)
  kAvx512Vnni256,  // the same 256-bit tiles, EVEX VPDPBUSD (AVX512-VNNI + AVX512VL)
  kAvx512Vnni,     // 512-bit tiles (AVX512-VNNI)
};

// The body int8_gemm runs by default: AVX512-VNNI, else AVX-VNNI, else plain C++; or the one the
// test hook TSR_TEST_INT8_KERNEL names (read on every call): `avx512_vnni`, `generic`, or
// `avx_vnni` (the 256-bit tiles: VEX where the CPU has AVX-VNNI, else EVEX). Throws
// std::invalid_argument, one line, for another value or a body this CPU cannot run.
Int8Kernel int8_kernel();

// Whether this CPU can run `kernel`.
bool int8_kernel_runs_here(Int8Kernel kernel);

// "AVX512-VNNI", "AVX-VNNI", "AVX-VNNI tiles EVEX-encoded on AVX512-VNNI", "plain C++".
std::string int8_kernel_name(Int8Kernel kernel);

// Quantizes `rows` rows of x [rows, k] (each value times smooth[k] first where smooth is not
// null: SmoothQuant's per-channel scaling) to u8 in q [rows, 4 * int8_k_groups(k)] (padding
// zero), with scales[row] and zero_points[row] such that x ~ scale * (q - zero_point). A row
// of zeros gets scale 1, zero point 0.
void quantize_rows_u8(const float* x, int64_t rows, int64_t k, const float* smooth, uint8_t* q,
                      float* scales, int32_t* zero_points, CpuIsa isa = cpu_isa());

// Called on each block of `out` the GEMM finished (rows [row, row_end), columns [column,
// column_end)), on the thread that wrote it, while the block is still in its cache: where an
// activation such as GELU is applied.
using Int8GemmFinish =
    std::function<void(int64_t row, int64_t row_end, int64_t column, int64_t column_end)>;

// out[rows, n] = row_scales[m] * column_scales[n] * (q[m] . w[n] - zero_points[m] *
// column_sums[n]) + bias[n] + residual[m, n], with q as quantize_rows_u8 left it and the
// weight as packed above; bias and residual ([rows, n], a residual connection) may be null,
// `finish` empty. Work is shared among LibTorch's intra-op threads (row blocks when there are
// many rows, column blocks otherwise); each sum is exact, so the result does not depend on the
// thread count. `kernel` must run here (int8_kernel_runs_here).
void int8_gemm(const uint8_t* q, int64_t rows, int64_t k, const int8_t* panels, int64_t n,
               const float* row_scales, const int32_t* zero_points, const float* column_scales,
               const int32_t* column_sums, const float* bias, const float* residual, float* out,
               const Int8GemmFinish& finish = {}, Int8Kernel kernel = int8_kernel());

}  // namespace tsrunner::detail
