#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace torch::jit {
struct Node;
struct Value;
}  // namespace torch::jit

namespace tsrunner::detail {

// Small questions the Linear rewrites ask of a graph's nodes.

// The tensor a prim::Constant holds, if `value` is one.
std::optional<at::Tensor> constant_tensor(torch::jit::Value* value);

// The constant float32 2-D weight of an aten::linear, if it has one (and a constant float32
// bias or none): what can be packed at load.
std::optional<at::Tensor> packable_weight(torch::jit::Node* linear);

// The GELU that alone consumes `linear`'s output, if any: it folds into the GEMM's epilogue.
torch::jit::Node* sole_gelu_user(torch::jit::Node* linear);

// The tensor + tensor aten::add (alpha 1) that alone consumes `linear`'s output, if any: a
// residual connection, folded into the GEMM by tsrunner::linear.
torch::jit::Node* sole_add_user(torch::jit::Node* linear);

// Whether every use of `value` reshapes it (aten::view or aten::reshape): then it can be a
// slice of a wider GEMM's output, a strided view, once the views become reshapes.
bool only_reshaped(torch::jit::Value* value);

}  // namespace tsrunner::detail
