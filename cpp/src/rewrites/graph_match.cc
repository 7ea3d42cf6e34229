#include "rewrites/graph_match.h"

#include <torch/csrc/jit/ir/ir.h>

namespace tsrunner::detail {

std::optional<at::Tensor> constant_tensor(torch::jit::Value* value) {
  if (value->node()->kind() != c10::prim::Constant) return std::nullopt;
  const std::optional<c10::IValue> constant = torch::jit::toIValue(value);
  if (!constant || !constant->isTensor()) return std::nullopt;
  return constant->toTensor();
}

std::optional<at::Tensor> packable_weight(torch::jit::Node* linear) {
  const std::optional<at::Tensor> weight = constant_tensor(linear->input(1));
  if (!weight || weight->scalar_type() != at::kFloat || weight->dim() != 2 ||
      weight->layout() != at::kStrided) {
    return std::nullopt;
  }
  torch::jit::Value* bias = linear->input(2);
  if (bias->type()->kind() != c10::TypeKind::NoneType) {
    const std::optional<at::Tensor> bias_tensor = constant_tensor(bias);
    if (!bias_tensor || bias_tensor->scalar_type() != at::kFloat) return std::nullopt;
  }
  return weight;
}

torch::jit::Node* sole_gelu_user(torch::jit::Node* linear) {
  const auto& uses = linear->output()->uses();
  if (uses.size() != 1) return nullptr;
  torch::jit::Node* user = uses[0].user;
  if (user->kind() != c10::aten::gelu || user->inputs().size() != 2) return nullptr;
  if (user->input(0) != linear->output()) return nullptr;
  const std::optional<c10::IValue> approximate = torch::jit::toIValue(user->input(1));
  if (!approximate || !approximate->isString()) return nullptr;
  return user;
}

torch::jit::Node* sole_add_user(torch::jit::Node* linear) {
  const auto& uses = linear->output()->uses();
  if (uses.size() != 1) return nullptr;
  torch::jit::Node* user = uses[0].user;
  if (user->kind() != c10::aten::add || user->inputs().size() != 3) return nullptr;
  const bool first = user->input(0) == linear->output();
  torch::jit::Value* other = user->input(first ? 1 : 0);
  if (other == linear->output() || !other->type()->isSubtypeOf(*c10::TensorType::get())) {
    return nullptr;
  }
  const std::optional<c10::IValue> alpha = torch::jit::toIValue(user->input(2));
  if (!alpha || !((alpha->isInt() && alpha->toInt() == 1) ||
                  (alpha->isDouble() && alpha->toDouble() == 1.0))) {
    return nullptr;
  }
  return user;
}

bool only_reshaped(torch::jit::Value* value) {
  if (value->uses().empty()) return false;
  for (const torch::jit::Use& use : value->uses()) {
    const c10::Symbol kind = use.user->kind();
    if ((kind != c10::aten::view && kind != c10::aten::reshape) || use.offset != 0) return false;
  }
  return true;
}

}  // namespace tsrunner::detail
