#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>

namespace tsrunner::detail {

// tsrunner's own bfloat16 GEMM for compute=bf16 on CPUs with AVX512_BF16 and no AMX (Zen 4,
// Cooper Lake). There VDPBF16PS does twice the multiply-adds of an fp32 FMA per cycle
// (Zen 4, one core: 232 against 117 GFLOP/s, benchmarks/cpp/instruction_peak.cc), but oneDNN's
// bf16 GEMM ran at 1.3-1.6x its fp32 one at 16 rows (1.7-1.8x at 128 and more:
// benchmarks/bf16_gemm.py). x is rounded to bf16 as it is read, the products are summed in
// float32, and bias, GELU and residual are applied to the float32 sum: the output is never
// rounded to bf16 (oneDNN's bf16 linear returns bf16).

// Whether this CPU can run the kernel (AVX512_BF16). Whether it should is the policy's call
// (kernel_policy.h: not where AMX makes oneDNN's kernels the faster ones).
bool bf16_gemm_supported();

// A float32 Linear weight [N, K] rounded to bf16 and rearranged for the kernel:
// [ceil(N/16), ceil(K/2), 16, 2]: column blocks of 16, each a run of K-pairs (what one
// VDPBF16PS multiplies), the missing columns and the odd K's last pair half zero.
at::Tensor pack_bf16_panels(const at::Tensor& weight);

// out[M, N] = bf16(x)[M, K] . bf16(weight)[N, K]^T + bias[N] (+ residual[M, N]) in float32,
// with the weight as pack_bf16_panels gave it; x, residual and out contiguous float32, bias and
// residual may be null. Work is shared among LibTorch's intra-op threads: by blocks of 72 rows
// when there are enough of them, else by column blocks; each output element is summed by one
// thread in one order either way. `finish`, if given, is called on whole rows [row, row_end),
// on the same blocks of 72 rows whatever the thread count, each once written and inside the
// parallel region (so it runs as one piece): an elementwise epilogue (GELU) whose rounding
// then does not depend on the thread count either.
using Bf16GemmFinish = std::function<void(int64_t row, int64_t row_end)>;
void bf16_gemm(const float* x, int64_t rows, int64_t k, const at::BFloat16* panels, int64_t n,
               const float* bias, const float* residual, float* out,
               const Bf16GemmFinish& finish = {});

}  // namespace tsrunner::detail
