#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>

namespace tsrunner::detail {

// The Linear ops the load-time rewrite (rewrites/linear_fusion.cc) puts in a graph; their
// schemas are in register_ops.cc, what each computes beside its body in linear_ops.cc.

// oneDNN's packed layout of a float32 or bf16 weight [N, K], for this CPU (never stored).
at::Tensor pack_linear_weight(const at::Tensor& weight);

// tsrunner::linear: float32, the small-row kernel at few rows, oneDNN's packed GEMM otherwise.
at::Tensor linear_op(const at::Tensor& x, const at::Tensor& packed_weight,
                     const std::optional<at::Tensor>& panels, const std::optional<at::Tensor>& bias,
                     c10::string_view attr, std::optional<c10::string_view> algorithm,
                     const std::optional<at::Tensor>& other, int64_t small_rows);

// tsrunner::linear_bf16: compute=bf16 on oneDNN's packed bf16 GEMM.
at::Tensor linear_bf16_op(const at::Tensor& x, const at::Tensor& packed_weight,
                          const std::optional<at::Tensor>& bias, c10::string_view attr,
                          std::optional<c10::string_view> algorithm,
                          const std::optional<at::Tensor>& other);

// tsrunner::linear_bf16_panels: compute=bf16 on tsrunner's AVX512-BF16 kernel.
at::Tensor linear_bf16_panels_op(const at::Tensor& x, const at::Tensor& panels,
                                 int64_t out_features, const std::optional<at::Tensor>& bias,
                                 c10::string_view attr, std::optional<c10::string_view> algorithm,
                                 const std::optional<at::Tensor>& other);

}  // namespace tsrunner::detail
