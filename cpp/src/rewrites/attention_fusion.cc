#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include <optional>
#include <vector>

#include "rewrites/fusion_passes.h"

namespace tsrunner::detail {

int fuse_attention(torch::jit::Graph& graph) {
  using torch::jit::Node;
  std::vector<Node*> found;
  for (Node* node : graph.nodes()) {  // top-level only, as pack_linears: traced graphs
    if (node->kind() == c10::aten::scaled_dot_product_attention) found.push_back(node);
  }
  const auto constant = [](torch::jit::Value* input) { return torch::jit::toIValue(input); };
  int fused = 0;
  for (Node* sdpa : found) {
    if (sdpa->inputs().size() != 8 || sdpa->outputs().size() != 1) continue;
    const std::optional<c10::IValue> dropout = constant(sdpa->input(4));
    const std::optional<c10::IValue> causal = constant(sdpa->input(5));
    const std::optional<c10::IValue> scale = constant(sdpa->input(6));
    const std::optional<c10::IValue> grouped = constant(sdpa->input(7));
    if (!dropout || !dropout->isDouble() || dropout->toDouble() != 0.0) continue;
    if (!causal || !causal->isBool() || causal->toBool()) continue;
    if (!scale || !(scale->isNone() || scale->isDouble())) continue;
    if (!grouped || !grouped->isBool() || grouped->toBool()) continue;
    torch::jit::WithInsertPoint before(sdpa);
    Node* attention = graph.create(
        c10::Symbol::fromQualString("tsrunner::attention"),
        {sdpa->input(0), sdpa->input(1), sdpa->input(2), sdpa->input(3), sdpa->input(6)}, 1);
    graph.insertNode(attention);
    attention->output()->setType(sdpa->output()->type());
    attention->output()->copyMetadata(sdpa->output());
    sdpa->output()->replaceAllUsesWith(attention->output());
    sdpa->destroy();
    ++fused;
  }
  return fused;
}

namespace {

using torch::jit::Node;
using torch::jit::Value;

std::optional<int64_t> constant_int(Value* value) {
  const std::optional<c10::IValue> constant = torch::jit::toIValue(value);
  if (!constant || !constant->isInt()) return std::nullopt;
  return constant->toInt();
}

// The single node of `kind` that uses `value`, as its input `offset`, if that is its only use.
Node* sole_user(Value* value, c10::Symbol kind, size_t offset = 0) {
  if (value->uses().size() != 1) return nullptr;
  const torch::jit::Use& use = value->uses()[0];
  return use.user->kind() == kind && use.offset == offset ? use.user : nullptr;
}

// q, k or v as the merged Q/K/V GEMM gives them: transpose(reshape(slice(qkv, -1, start,
// start + width, 1), shape), 1, 2), the slice and the reshape used only there.
struct HeadView {
  Value* qkv;
  Value* shape;
  int64_t start;
  int64_t width;
  Node* transpose;
};

std::optional<HeadView> head_view(Value* heads) {
  Node* transpose = heads->node();
  if (transpose->kind() != c10::aten::transpose || transpose->inputs().size() != 3 ||
      constant_int(transpose->input(1)) != 1 || constant_int(transpose->input(2)) != 2) {
    return std::nullopt;
  }
  Node* reshape = transpose->input(0)->node();
  if (reshape->kind() != c10::aten::reshape || reshape->output()->uses().size() != 1) {
    return std::nullopt;
  }
  Node* slice = reshape->input(0)->node();
  if (slice->kind() != c10::aten::slice || slice->inputs().size() != 5 ||
      slice->output()->uses().size() != 1) {
    return std::nullopt;
  }
  const std::optional<int64_t> start = constant_int(slice->input(2));
  const std::optional<int64_t> end = constant_int(slice->input(3));
  if (constant_int(slice->input(1)) != -1 || constant_int(slice->input(4)) != 1 || !start || !end ||
      *start < 0 || *end <= *start) {
    return std::nullopt;
  }
  return HeadView{slice->input(0), reshape->input(1), *start, *end - *start, transpose};
}

// aten::size(of, dim) whose result only `list` reads.
bool size_read_by(Value* value, Value* of, int64_t dim, Node* list) {
  Node* size = value->node();
  if (size->kind() != c10::aten::size || size->inputs().size() != 2 || size->input(0) != of ||
      constant_int(size->input(1)) != dim) {
    return false;
  }
  for (const torch::jit::Use& use : size->output()->uses()) {
    if (use.user != list) return false;
  }
  return true;
}

// Every use of `value` is `allowed` or an aten::size read only by `list`.
bool other_uses_are_sizes_for(Value* value, Node* allowed, Node* list) {
  for (const torch::jit::Use& use : value->uses()) {
    if (use.user == allowed) continue;
    if (use.user->kind() != c10::aten::size) return false;
    for (const torch::jit::Use& size_use : use.user->output()->uses()) {
      if (size_use.user != list) return false;
    }
  }
  return true;
}

}  // namespace

int fuse_self_attention(torch::jit::Graph& graph) {
  std::vector<Node*> found;
  for (Node* node : graph.nodes()) {
    if (node->kind() == c10::Symbol::fromQualString("tsrunner::attention")) found.push_back(node);
  }
  int fused = 0;
  for (Node* attention : found) {
    const std::optional<HeadView> q = head_view(attention->input(0));
    const std::optional<HeadView> k = head_view(attention->input(1));
    const std::optional<HeadView> v = head_view(attention->input(2));
    if (!q || !k || !v || k->qkv != q->qkv || v->qkv != q->qkv || k->shape != q->shape ||
        v->shape != q->shape || k->width != q->width || v->width != q->width) {
      continue;
    }
    // The way back: reshape(attention, [size(attention, 0), -1, size(q, 2), size(v, 3)]),
    // transpose(1, 2), contiguous, reshape(out_shape), contiguous.
    Node* back = nullptr;
    for (const torch::jit::Use& use : attention->output()->uses()) {
      if (use.user->kind() == c10::aten::reshape && use.offset == 0 && back == nullptr) {
        back = use.user;
      } else if (use.user->kind() != c10::aten::size) {
        back = nullptr;
        break;
      }
    }
    if (back == nullptr) continue;
    Node* list = back->input(1)->node();
    if (list->kind() != c10::prim::ListConstruct || list->inputs().size() != 4 ||
        list->output()->uses().size() != 1 ||
        !size_read_by(list->input(0), attention->output(), 0, list) ||
        constant_int(list->input(1)) != -1 ||
        !size_read_by(list->input(2), q->transpose->output(), 2, list) ||
        !size_read_by(list->input(3), v->transpose->output(), 3, list) ||
        !other_uses_are_sizes_for(attention->output(), back, list) ||
        !other_uses_are_sizes_for(q->transpose->output(), attention, list) ||
        !other_uses_are_sizes_for(v->transpose->output(), attention, list) ||
        k->transpose->output()->uses().size() != 1) {
      continue;
    }
    Node* transpose = sole_user(back->output(), c10::aten::transpose);
    if (transpose == nullptr || constant_int(transpose->input(1)) != 1 ||
        constant_int(transpose->input(2)) != 2) {
      continue;
    }
    Node* contiguous = sole_user(transpose->output(), c10::aten::contiguous);
    Node* reshape = contiguous ? sole_user(contiguous->output(), c10::aten::reshape) : nullptr;
    Node* last = reshape ? sole_user(reshape->output(), c10::aten::contiguous) : nullptr;
    if (last == nullptr || constant_int(contiguous->input(1)) != 0 ||
        constant_int(last->input(1)) != 0) {
      continue;
    }
    torch::jit::WithInsertPoint before(last);
    Node* fused_node = graph.create(
        c10::Symbol::fromQualString("tsrunner::self_attention"),
        {q->qkv, q->shape, graph.insertConstant(q->start), graph.insertConstant(k->start),
         graph.insertConstant(v->start), graph.insertConstant(q->width), attention->input(3),
         attention->input(4), reshape->input(1)},
        1);
    graph.insertNode(fused_node);
    fused_node->output()->setType(last->output()->type());
    fused_node->output()->copyMetadata(last->output());
    last->output()->replaceAllUsesWith(fused_node->output());
    ++fused;
  }
  // The views, sizes and the attention node itself are now unused: side-effect free, dropped.
  if (fused > 0) torch::jit::EliminateDeadCode(graph.block());
  return fused;
}

}  // namespace tsrunner::detail
