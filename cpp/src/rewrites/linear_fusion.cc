// The Linear rewrites: aten::addmm with constant weights (Transformers' Conv1D: GPT-2) turned
// into Linear layers, sibling Linear layers merged into one GEMM, then every float32 Linear
// with constant weights put on tsrunner's Linear ops with its weight packed at load.
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include <map>
#include <optional>
#include <vector>

#include "kernels/bf16_gemm.h"
#include "kernels/small_gemm.h"
#include "ops/linear_ops.h"
#include "rewrites/derived_weights.h"
#include "rewrites/fusion_passes.h"
#include "rewrites/graph_match.h"

namespace tsrunner::detail {

void split_merged_output(torch::jit::Graph& graph, const std::vector<torch::jit::Node*>& group,
                         torch::jit::Value* wide, const std::vector<int64_t>& widths) {
  using torch::jit::Node;
  // Nodes are destroyed only after every insert-point guard is gone: a guard restores the
  // previous point when it ends, which must still exist.
  std::vector<Node*> replaced;
  {
    torch::jit::WithInsertPoint guard(group.front());
    int64_t start = 0;
    for (size_t i = 0; i < group.size(); ++i) {
      Node* linear = group[i];
      graph.setInsertPoint(linear);
      torch::jit::Value* part =
          graph.insert(c10::aten::slice, {wide, -1, start, start + widths[i], 1});
      part->setType(linear->output()->type());
      start += widths[i];
      const std::vector<torch::jit::Use> uses = linear->output()->uses();  // grows below
      for (const torch::jit::Use& use : uses) {
        if (use.user->kind() != c10::aten::view) continue;
        // view() refuses some strided inputs; reshape() returns the same view where view()
        // would succeed and copies only where it would have thrown.
        graph.setInsertPoint(use.user);
        Node* reshape = graph.insertNode(graph.create(c10::aten::reshape, use.user->inputs(), 1));
        reshape->output()->setType(use.user->output()->type());
        use.user->output()->replaceAllUsesWith(reshape->output());
        replaced.push_back(use.user);
      }
      linear->output()->replaceAllUsesWith(part);
      replaced.push_back(linear);
    }
  }
  // Views first (they read the linears); kinds are read before anything is destroyed, since
  // a destroyed node's kind() is a use after free (found by ASan, make sanitize).
  std::vector<Node*> views, linears;
  for (Node* node : replaced) {
    (node->kind() == c10::aten::view ? views : linears).push_back(node);
  }
  for (Node* node : views) node->destroy();
  for (Node* node : linears) node->destroy();
}

int addmm_to_linear(torch::jit::Graph& graph, DerivedWeights& derived) {
  using torch::jit::Node;
  std::vector<Node*> found;
  for (Node* node : graph.nodes()) {
    if (node->kind() == c10::aten::addmm && node->inputs().size() == 5) found.push_back(node);
  }
  const auto is_one = [](torch::jit::Value* value) {
    const std::optional<c10::IValue> constant = torch::jit::toIValue(value);
    return constant && ((constant->isInt() && constant->toInt() == 1) ||
                        (constant->isDouble() && constant->toDouble() == 1.0));
  };
  int rewritten = 0;
  for (Node* addmm : found) {
    // addmm(bias, x, weight, beta, alpha) = beta * bias + alpha * x @ weight: weight [K, N].
    const std::optional<at::Tensor> weight = constant_tensor(addmm->input(2));
    const std::optional<at::Tensor> bias = constant_tensor(addmm->input(0));
    if (!weight || !bias || weight->scalar_type() != at::kFloat || weight->dim() != 2 ||
        weight->layout() != at::kStrided || bias->scalar_type() != at::kFloat || bias->dim() != 1 ||
        bias->size(0) != weight->size(1) || !is_one(addmm->input(3)) || !is_one(addmm->input(4))) {
      continue;
    }
    torch::jit::WithInsertPoint before(addmm);
    torch::jit::Value* linear_weight = graph.insertConstant(
        derived.get("transposed", {*weight}, [&] { return weight->t().contiguous(); }));
    Node* linear = graph.insertNode(
        graph.create(c10::aten::linear, {addmm->input(1), linear_weight, addmm->input(0)}, 1));
    linear->output()->setType(addmm->output()->type());
    linear->output()->copyMetadata(addmm->output());
    addmm->output()->replaceAllUsesWith(linear->output());
    addmm->destroy();
    ++rewritten;
  }
  return rewritten;
}

// One wider GEMM keeps both cores busier than three narrow ones at short sequences.
int merge_sibling_linears(torch::jit::Graph& graph, DerivedWeights& derived) {
  using torch::jit::Node;
  using torch::jit::Value;
  std::map<Value*, std::vector<Node*>> by_input;
  std::vector<Value*> inputs_in_order;
  for (Node* node : graph.nodes()) {
    if (node->kind() != c10::aten::linear || !packable_weight(node) ||
        !only_reshaped(node->output())) {
      continue;
    }
    auto& group = by_input[node->input(0)];
    if (group.empty()) inputs_in_order.push_back(node->input(0));
    group.push_back(node);
  }
  int merged_groups = 0;
  for (Value* input : inputs_in_order) {
    const std::vector<Node*>& group = by_input[input];
    if (group.size() < 2) continue;
    std::vector<at::Tensor> weights;
    std::vector<at::Tensor> biases;
    const bool with_bias = group[0]->input(2)->type()->kind() != c10::TypeKind::NoneType;
    bool compatible = true;
    for (Node* linear : group) {
      weights.push_back(*constant_tensor(linear->input(1)));
      compatible = compatible && weights.back().size(1) == weights.front().size(1);
      const bool has_bias = linear->input(2)->type()->kind() != c10::TypeKind::NoneType;
      compatible = compatible && has_bias == with_bias;
      if (has_bias) biases.push_back(*constant_tensor(linear->input(2)));
    }
    if (!compatible) continue;
    Node* wide = nullptr;
    {
      Node* first = group.front();  // graph order: the merged GEMM goes where the first was
      torch::jit::WithInsertPoint before_first(first);
      Value* weight =
          graph.insertConstant(derived.get("merged", weights, [&] { return at::cat(weights, 0); }));
      Value* bias = with_bias ? graph.insertConstant(derived.get(
                                    "merged", biases, [&] { return at::cat(biases, 0); }))
                              : first->input(2);
      wide = graph.insertNode(graph.create(c10::aten::linear, {input, weight, bias}, 1));
      wide->output()->setType(first->output()->type());
    }
    std::vector<int64_t> widths;
    for (const at::Tensor& w : weights) widths.push_back(w.size(0));
    split_merged_output(graph, group, wide->output(), widths);
    ++merged_groups;
  }
  return merged_groups;
}

void pack_linears(torch::jit::Graph& graph, const LinearPlan& plan, KernelPath& path,
                  DerivedWeights& derived) {
  using torch::jit::Node;
  const bool bf16 = plan.bf16;
  std::vector<Node*> linears;
  for (Node* node : graph.nodes()) {  // top-level only: traced graphs have no blocks here
    if (node->kind() == c10::aten::linear) linears.push_back(node);
  }
  for (Node* linear : linears) {
    const std::optional<at::Tensor> weight = packable_weight(linear);
    if (!weight) continue;
    torch::jit::Value* bias = linear->input(2);
    Node* gelu = sole_gelu_user(linear);
    Node* add = gelu ? nullptr : sole_add_user(linear);
    torch::jit::WithInsertPoint guard(add ? add : linear);
    torch::jit::Value* other = add ? add->input(add->input(0) == linear->output() ? 1 : 0)
                                   : graph.insertConstant(c10::IValue());
    torch::jit::Value* attr = graph.insertConstant(gelu ? "gelu" : "none");
    torch::jit::Value* algorithm = gelu ? gelu->input(1) : graph.insertConstant(c10::IValue());
    Node* fast = nullptr;
    if (plan.bf16_panels) {  // tsrunner's bf16 kernel for every row count; no oneDNN copy
      torch::jit::Value* panels = graph.insertConstant(
          derived.get("bf16_panels", {*weight}, [&] { return pack_bf16_panels(*weight); }));
      torch::jit::Value* out_features = graph.insertConstant(weight->size(0));
      fast =
          graph.create(c10::Symbol::fromQualString("tsrunner::linear_bf16_panels"),
                       {linear->input(0), panels, out_features, bias, attr, algorithm, other}, 1);
      ++path.bf16_kernel_linears;
    } else {
      // Graph::insertConstant refuses tensors without storage, which oneDNN's packed ones are.
      Node* packed_weight = graph.create(c10::prim::Constant);
      const at::Tensor packed_tensor = derived.get(bf16 ? "onednn_bf16" : "onednn", {*weight}, [&] {
        return pack_linear_weight(bf16 ? weight->to(at::kBFloat16) : *weight);
      });
      packed_weight->t_(c10::attr::value, packed_tensor);
      packed_weight->output()->inferTypeFrom(packed_tensor);
      graph.insertNode(packed_weight);
      if (bf16) {
        fast = graph.create(
            c10::Symbol::fromQualString("tsrunner::linear_bf16"),
            {linear->input(0), packed_weight->output(), bias, attr, algorithm, other}, 1);
      } else {
        torch::jit::Value* panels = graph.insertConstant(c10::IValue());
        if (plan.small_rows) {
          panels = graph.insertConstant(
              derived.get("panels", {*weight}, [&] { return pack_panels(*weight); }));
          ++path.small_row_linears;
        }
        torch::jit::Value* limit = graph.insertConstant(plan.small_gemm_rows);
        fast = graph.create(c10::Symbol::fromQualString("tsrunner::linear"),
                            {linear->input(0), packed_weight->output(), panels, bias, attr,
                             algorithm, other, limit},
                            1);
      }
    }
    graph.insertNode(fast);
    Node* replaced = gelu ? gelu : add ? add : linear;
    fast->output()->setType(replaced->output()->type());
    fast->output()->copyMetadata(replaced->output());
    replaced->output()->replaceAllUsesWith(fast->output());
    if (replaced != linear) replaced->destroy();
    linear->destroy();
    ++path.packed_linears;
    if (gelu) ++path.fused_activations;
    if (add) ++path.folded_adds;
  }
  torch::jit::EliminateDeadCode(graph.block());
}

}  // namespace tsrunner::detail
