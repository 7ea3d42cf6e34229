#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>

namespace tsrunner::detail {

// Self-attention for short sequences (a sentence: tens of tokens), as
// aten::scaled_dot_product_attention computes it without dropout or a causal mask: softmax(q
// k^T * scale + mask) v per batch row and head, one pass per head with the scores kept in cache.
// At 16 tokens LibTorch's flash kernel spent ~50 us per MiniLM layer on setup (the boolean
// mask converted to a float tensor, buffers, a parallel region) around ~5 us of arithmetic.
// q [B, H, T, D], k [B, H, S, D] and v [B, H, S, Dv] may be strided views (the merged Q/K/V
// GEMM's output sliced and transposed: no copy); the result is [B, H, T, Dv] laid out as [B, T,
// H, Dv], as LibTorch's kernel returns it, so the transpose + reshape to the output projection's
// input copies nothing. One query row (a generation's decode step) takes any number of keys,
// read once each. Anything else (another dtype, more query rows and more keys than
// small_attention_max_keys(), a row whose keys are all masked, a mask that does not broadcast)
// runs LibTorch's operator.
at::Tensor small_attention(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                           const std::optional<at::Tensor>& mask, std::optional<double> scale);

// The most keys (S) the fused kernel takes for more than one query row; beyond it LibTorch's
// flash attention, which blocks for cache reuse, is as fast or faster.
int64_t small_attention_max_keys();

// small_attention on the merged Q/K/V GEMM's output [B, T, C] as the traced graph reads it:
// q, k and v the column ranges [start, start + width) reshaped to `head_shape` ([B, T, H, D])
// and transposed; the result transposed back, made contiguous and reshaped to `out_shape`
// ([B, T, H x D]). Reads q, k, v in place and writes the result in its final layout when the
// shapes are those; otherwise runs exactly those steps.
at::Tensor small_self_attention(const at::Tensor& qkv, c10::IntArrayRef head_shape, int64_t q_start,
                                int64_t k_start, int64_t v_start, int64_t width,
                                const std::optional<at::Tensor>& mask, std::optional<double> scale,
                                c10::IntArrayRef out_shape);

}  // namespace tsrunner::detail
