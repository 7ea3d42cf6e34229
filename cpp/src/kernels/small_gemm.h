#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>

namespace tsrunner::detail {

// A float32 GEMM for few rows (a sentence or two: M = batch x tokens <= the runner's
// small_gemm_rows, 48 unless set: at 64 rows oneDNN was level on Zen 4, 1 and 2 threads).
// There the weights are read once per call and used for only M rows, so the kernel must
// stream them at memory speed: oneDNN's fp32 kernel reads MiniLM's 43 MB at 13-15 GB/s at
// M=16 on a 2-core Zen 4, where this one keeps the FMA units busy while the weights stream in
// (docs/benchmarks.md, "The small-row kernel"). Larger M stays on oneDNN, which blocks for
// cache reuse this kernel does not attempt.

// Whether this CPU can run the kernel (AVX-512F).
bool small_gemm_supported();

// A Linear weight [N, K] rearranged for the kernel: [ceil(N/16), K, 16], column block by
// column block, each K-major so the kernel reads it front to back; the last block zero-padded.
at::Tensor pack_panels(const at::Tensor& weight);

// out[M, N] = x[M, K] . weight[N, K]^T + bias[N] (+ residual[M, N]), with the weight as
// pack_panels gave it; x, residual and out contiguous float32, bias and residual may be null.
// Column blocks are shared among LibTorch's intra-op threads; each output element is computed
// by one thread in one order, so the result does not depend on the thread count. `finish`,
// if given, is called by each thread on the columns [first, end) it wrote, all rows: an
// elementwise epilogue (GELU) then runs in parallel on data still in cache.
void small_gemm(const float* x, int64_t rows, int64_t k, const float* panels, int64_t n,
                const float* bias, const float* residual, float* out,
                const std::function<void(int64_t first, int64_t end)>& finish = {});

}  // namespace tsrunner::detail
