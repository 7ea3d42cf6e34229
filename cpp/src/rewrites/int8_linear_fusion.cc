// The int8 Linear rewrites: an int8 export's tsrunner::linear_int8 calls (made at export,
// python/tsrunner/quantize.py) merged where they share an input, and the GELU or residual add
// that follows one folded into its epilogue.
#include <ATen/ATen.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include <map>
#include <optional>
#include <vector>

#include "rewrites/derived_weights.h"
#include "rewrites/fusion_passes.h"
#include "rewrites/graph_match.h"

namespace tsrunner::detail {
namespace {

using torch::jit::Node;
using torch::jit::Value;

// linear_int8(x, panels, scales, sums, bias, smooth, out_features, attr, algorithm, other)
enum Input { kX, kPanels, kScales, kSums, kBias, kSmooth, kOutFeatures, kAttr, kAlgorithm, kOther };
constexpr size_t kInputs = 10;

bool is_none(Value* value) { return value->type()->kind() == c10::TypeKind::NoneType; }

// A tsrunner::linear_int8 call as the export made it: constant weights, nothing folded yet.
bool plain_int8_linear(Node* node) {
  static const c10::Symbol kind = c10::Symbol::fromQualString("tsrunner::linear_int8");
  if (node->kind() != kind || node->inputs().size() != kInputs) return false;
  for (Input input : {kPanels, kScales, kSums}) {
    if (!constant_tensor(node->input(input))) return false;
  }
  for (Input input : {kBias, kSmooth}) {
    if (!is_none(node->input(input)) && !constant_tensor(node->input(input))) return false;
  }
  const std::optional<c10::IValue> attr = torch::jit::toIValue(node->input(kAttr));
  return torch::jit::toIValue(node->input(kOutFeatures)).has_value() && attr && attr->isString() &&
         attr->toStringRef() == "none" && is_none(node->input(kAlgorithm)) &&
         is_none(node->input(kOther));
}

int64_t out_features(Node* node) {
  return torch::jit::toIValue(node->input(kOutFeatures))->toInt();
}

// Whether the optional constant tensors `a` and `b` are both absent or hold equal values.
bool same_optional(Value* a, Value* b) {
  if (is_none(a) || is_none(b)) return is_none(a) && is_none(b);
  const at::Tensor left = *constant_tensor(a);
  const at::Tensor right = *constant_tensor(b);
  return left.sizes() == right.sizes() && at::equal(left, right);
}

}  // namespace

int merge_sibling_int8_linears(torch::jit::Graph& graph, DerivedWeights& derived) {
  std::map<Value*, std::vector<Node*>> by_input;
  std::vector<Value*> inputs_in_order;
  for (Node* node : graph.nodes()) {
    // Whole panels only: a partial panel's padding columns would land inside the merged output.
    if (!plain_int8_linear(node) || out_features(node) % 16 != 0 ||
        !only_reshaped(node->output())) {
      continue;
    }
    auto& group = by_input[node->input(kX)];
    if (group.empty()) inputs_in_order.push_back(node->input(kX));
    group.push_back(node);
  }
  int merged_groups = 0;
  for (Value* input : inputs_in_order) {
    const std::vector<Node*>& group = by_input[input];
    if (group.size() < 2) continue;
    Node* first = group.front();
    std::vector<at::Tensor> panels, scales, sums, biases;
    std::vector<int64_t> widths;
    bool compatible = true;
    for (Node* node : group) {
      panels.push_back(*constant_tensor(node->input(kPanels)));
      scales.push_back(*constant_tensor(node->input(kScales)));
      sums.push_back(*constant_tensor(node->input(kSums)));
      if (!is_none(node->input(kBias))) biases.push_back(*constant_tensor(node->input(kBias)));
      widths.push_back(out_features(node));
      compatible = compatible &&
                   panels.back().sizes().slice(1) == panels.front().sizes().slice(1) &&
                   is_none(node->input(kBias)) == is_none(first->input(kBias)) &&
                   same_optional(node->input(kSmooth), first->input(kSmooth));
    }
    if (!compatible) continue;
    Node* wide = nullptr;
    {
      torch::jit::WithInsertPoint before_first(first);  // graph order: where the first was
      int64_t total = 0;
      for (int64_t width : widths) total += width;
      std::vector<Value*> inputs(first->inputs().begin(), first->inputs().end());
      // Each merged tensor made once for all the methods that hold these layers.
      const auto merged = [&](const char* kind, const std::vector<at::Tensor>& parts) {
        return graph.insertConstant(derived.get(kind, parts, [&] { return at::cat(parts, 0); }));
      };
      inputs[kPanels] = merged("int8_panels", panels);
      inputs[kScales] = merged("int8_scales", scales);
      inputs[kSums] = merged("int8_sums", sums);
      if (!biases.empty()) inputs[kBias] = merged("int8_bias", biases);
      inputs[kOutFeatures] = graph.insertConstant(total);
      wide = graph.insertNode(graph.create(first->kind(), inputs, 1));
      wide->output()->setType(first->output()->type());
    }
    split_merged_output(graph, group, wide->output(), widths);
    ++merged_groups;
  }
  if (merged_groups > 0) torch::jit::EliminateDeadCode(graph.block());
  return merged_groups;
}

void fold_int8_epilogues(torch::jit::Graph& graph, KernelPath& path) {
  std::vector<Node*> linears;
  for (Node* node : graph.nodes()) {
    if (plain_int8_linear(node)) linears.push_back(node);
  }
  for (Node* linear : linears) {
    Node* gelu = sole_gelu_user(linear);
    Node* add = gelu ? nullptr : sole_add_user(linear);
    if (!gelu && !add) continue;
    Node* fused = nullptr;
    {
      torch::jit::WithInsertPoint guard(add ? add : linear);
      std::vector<Value*> inputs(linear->inputs().begin(), linear->inputs().end());
      if (gelu) {
        inputs[kAttr] = graph.insertConstant("gelu");
        inputs[kAlgorithm] = gelu->input(1);
      } else {
        inputs[kOther] = add->input(add->input(0) == linear->output() ? 1 : 0);
      }
      fused = graph.insertNode(graph.create(linear->kind(), inputs, 1));
    }
    Node* replaced = gelu ? gelu : add;
    fused->output()->setType(replaced->output()->type());
    fused->output()->copyMetadata(replaced->output());
    replaced->output()->replaceAllUsesWith(fused->output());
    replaced->destroy();
    linear->destroy();
    if (gelu) ++path.fused_activations;
    if (add) ++path.folded_adds;
  }
}

}  // namespace tsrunner::detail
