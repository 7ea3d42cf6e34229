#include <torch/csrc/jit/ir/ir.h>

#include <optional>
#include <vector>

#include "rewrites/fusion_passes.h"

namespace tsrunner::detail {

int fuse_layer_norms(torch::jit::Graph& graph) {
  using torch::jit::Node;
  std::vector<Node*> found;
  for (Node* node : graph.nodes()) {  // top-level only: traced graphs
    if (node->kind() == c10::aten::layer_norm) found.push_back(node);
  }
  const auto vector_of = [](torch::jit::Value* value, int64_t n) {
    const std::optional<c10::IValue> constant = torch::jit::toIValue(value);
    if (!constant || !constant->isTensor()) return false;
    const at::Tensor& tensor = constant->toTensor();
    return tensor.scalar_type() == at::kFloat && tensor.dim() == 1 && tensor.numel() == n &&
           tensor.layout() == at::kStrided;
  };
  int fused = 0;
  for (Node* norm : found) {
    if (norm->inputs().size() != 6 || norm->outputs().size() != 1) continue;
    const std::optional<c10::IValue> shape = torch::jit::toIValue(norm->input(1));
    const std::optional<c10::IValue> eps = torch::jit::toIValue(norm->input(4));
    if (!shape || !shape->isIntList() || shape->toIntList().size() != 1) continue;
    const int64_t n = shape->toIntList().get(0);
    if (n <= 0 || !vector_of(norm->input(2), n) || !vector_of(norm->input(3), n)) continue;
    if (!eps || !eps->isDouble()) continue;
    torch::jit::WithInsertPoint before(norm);
    Node* fast = graph.create(c10::Symbol::fromQualString("tsrunner::layer_norm"),
                              {norm->input(0), norm->input(2), norm->input(3), norm->input(4)}, 1);
    graph.insertNode(fast);
    fast->output()->setType(norm->output()->type());
    fast->output()->copyMetadata(norm->output());
    norm->output()->replaceAllUsesWith(fast->output());
    norm->destroy();
    ++fused;
  }
  return fused;
}

}  // namespace tsrunner::detail
