#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>

namespace tsrunner::detail {

// tsrunner::pack_int8_panels: an int8 weight [N, K] in the layout kernels/int8_gemm.h reads.
at::Tensor pack_int8_panels(const at::Tensor& weight);

// tsrunner::linear_int8: x [..., K] float32 through the int8 Linear of kernels/int8_gemm.h
// (per-row u8 activations, per-channel s8 weights `panels` with `scales` [N] and their sums
// over K `sums` [N]); `smooth` [K], if given, multiplies x before it is quantized. The load-time
// rewrite (rewrites/int8_linear_fusion.cc) folds what follows into the epilogue: a GELU (attr
// "gelu", `algorithm` its approximation) or a residual `other`, added in the epilogue when it
// has the output's shape (checked per call: elsewhere it broadcasts, and is added after).
// Archives call it with the first seven arguments; the rest have defaults.
at::Tensor linear_int8_op(const at::Tensor& x, const at::Tensor& panels, const at::Tensor& scales,
                          const at::Tensor& sums, const std::optional<at::Tensor>& bias,
                          const std::optional<at::Tensor>& smooth, int64_t out_features,
                          c10::string_view attr, std::optional<c10::string_view> algorithm,
                          const std::optional<at::Tensor>& other);

}  // namespace tsrunner::detail
