#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace tsrunner::detail {

// The raw attention kernel behind small_attention.h: softmax(q k^T * scale + mask) v per batch
// row and head, one pass per head with the scores kept in cache. Head sizes that are multiples
// of 16 take the AVX-512 body where the CPU has it, any other the generic one.

// One [B, H, rows, D] operand: its data and element strides (the last one is 1).
struct AttentionOperand {
  const float* data;
  int64_t batch_stride, head_stride, row_stride;
};

// Every (batch row, head) of q [B, H, T, D], k [B, H, S, D], v [B, H, S, Dv] into `out`
// ([B, H, T, Dv] at the given strides). False when some query row has no key to attend to.
bool attend_heads(int64_t batch, int64_t heads, int64_t t, int64_t s, int64_t d, int64_t dv,
                  AttentionOperand q, AttentionOperand k, AttentionOperand v,
                  const at::Tensor& full_mask, float scale, float* out,
                  AttentionOperand out_strides);

}  // namespace tsrunner::detail
