#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace tsrunner::detail {

// LayerNorm over the last dimension for few rows (a sentence: <= small_layer_norm_max_rows()),
// on the calling thread: at 16 x 384 LibTorch's kernel took ~4 us, most of it setup around
// ~1 us of arithmetic, 13 times per MiniLM call. Two passes per row (mean, then the variance
// of x - mean), y = (x - mean) * rstd * weight + bias. Other inputs (more rows, another dtype,
// a non-contiguous x) run at::layer_norm.
at::Tensor small_layer_norm(const at::Tensor& input, const at::Tensor& weight,
                            const at::Tensor& bias, double eps);

// The most rows (product of the leading dimensions) the kernel takes.
int64_t small_layer_norm_max_rows();

}  // namespace tsrunner::detail
