// The fast path's load-time rewrites onto tsrunner's short-sequence kernels: each takes exactly
// the calls its kernel computes the same and leaves any other call as it is.
//  - aten::scaled_dot_product_attention -> tsrunner::attention
//  (cpp/src/rewrites/attention_fusion.cc): no
//    dropout, no causal mask, no grouped heads, a constant scale;
//  - aten::layer_norm -> tsrunner::layer_norm (cpp/src/rewrites/layer_norm_fusion.cc): one
//  normalized
//    dimension, constant float32 weight and bias of that size, a constant eps;
//  - aten::addmm (Transformers' Conv1D) -> aten::linear (cpp/src/rewrites/linear_fusion.cc):
//    constant float32 weight and 1-D bias, beta and alpha 1.
// The numbers themselves are tested in tests/python/test_fused_attention.py and
// test_fused_layer_norm.py.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/ir/irparser.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "rewrites/derived_weights.h"
#include "rewrites/fusion_passes.h"

namespace {

// One attention call as traced Transformers graphs have it, with its last four arguments
// (dropout_p, is_causal, scale, enable_gqa) given as IR constants or graph inputs.
std::shared_ptr<torch::jit::Graph> attention_graph(const std::string& dropout,
                                                   const std::string& causal,
                                                   const std::string& scale,
                                                   const std::string& grouped) {
  const std::string ir = R"IR(
graph(%q : Tensor, %k : Tensor, %v : Tensor, %mask : Tensor, %p : float):
  %dropout : float = prim::Constant[value=)IR" +
                         dropout + R"IR(]()
  %causal : bool = prim::Constant[value=)IR" +
                         causal + R"IR(]()
  %scale : )IR" + scale + R"IR(
  %grouped : bool = prim::Constant[value=)IR" +
                         grouped + R"IR(]()
  %out : Tensor = aten::scaled_dot_product_attention(%q, %k, %v, %mask, %dropout, %causal, %scale, %grouped)
  return (%out))IR";
  auto graph = std::make_shared<torch::jit::Graph>();
  torch::jit::parseIR(ir, graph.get());
  return graph;
}

int count(const torch::jit::Graph& graph, const char* kind) {
  int found = 0;
  for (const torch::jit::Node* node : graph.nodes()) {
    if (node->kind() == c10::Symbol::fromQualString(kind)) ++found;
  }
  return found;
}

const std::string kFloatScale = "float = prim::Constant[value=0.17677669529663689]()";
const std::string kNoScale = "NoneType = prim::Constant()";

TEST(AttentionFusion, TakesAttentionWithoutDropoutOrCausalMask) {
  for (const std::string& scale : {kFloatScale, kNoScale}) {
    auto graph = attention_graph("0.", "0", scale, "0");
    EXPECT_EQ(tsrunner::detail::fuse_attention(*graph), 1);
    EXPECT_EQ(count(*graph, "aten::scaled_dot_product_attention"), 0);
    ASSERT_EQ(count(*graph, "tsrunner::attention"), 1);
    // Same inputs, scale kept: the graph's output is now the fused op's.
    const torch::jit::Node* fused = graph->outputs()[0]->node();
    EXPECT_EQ(fused->kind(), c10::Symbol::fromQualString("tsrunner::attention"));
    ASSERT_EQ(fused->inputs().size(), 5U);
    for (size_t i = 0; i < 4; ++i) EXPECT_EQ(fused->input(i), graph->inputs()[i]);
    graph->lint();
  }
}

TEST(AttentionFusion, LeavesOtherAttentionCallsAsTheyAre) {
  const auto unchanged = [](const std::shared_ptr<torch::jit::Graph>& graph) {
    EXPECT_EQ(tsrunner::detail::fuse_attention(*graph), 0);
    EXPECT_EQ(count(*graph, "aten::scaled_dot_product_attention"), 1);
    EXPECT_EQ(count(*graph, "tsrunner::attention"), 0);
  };
  unchanged(attention_graph("0.1", "0", kNoScale, "0"));  // dropout
  unchanged(attention_graph("0.", "1", kNoScale, "0"));   // causal mask
  unchanged(attention_graph("0.", "0", kNoScale, "1"));   // grouped-query heads
  // A dropout probability that is not a constant: what it is at run time is unknown.
  auto graph = attention_graph("0.", "0", kNoScale, "0");
  torch::jit::Node* sdpa = graph->outputs()[0]->node();
  sdpa->replaceInput(4, graph->inputs()[4]);
  unchanged(graph);
}

// One layer norm over `shape`, its weight and bias the graph's inputs (a module not frozen).
std::shared_ptr<torch::jit::Graph> layer_norm_graph(const std::string& shape) {
  const std::string ir = R"IR(
graph(%x : Tensor, %w_in : Tensor, %b_in : Tensor):
  %shape : int[] = prim::Constant[value=)IR" +
                         shape + R"IR(]()
  %eps : float = prim::Constant[value=9.9999999999999998e-13]()
  %cudnn : bool = prim::Constant[value=1]()
  %y : Tensor = aten::layer_norm(%x, %shape, %w_in, %b_in, %eps, %cudnn)
  return (%y))IR";
  auto graph = std::make_shared<torch::jit::Graph>();
  torch::jit::parseIR(ir, graph.get());
  return graph;
}

// Constant weight and bias tensors: parseIR cannot write tensor constants, so they are put in.
void constant_weight_and_bias(torch::jit::Graph& graph, const at::Tensor& weight,
                              const at::Tensor& bias) {
  torch::jit::Node* norm = graph.outputs()[0]->node();
  torch::jit::WithInsertPoint before(norm);
  norm->replaceInput(2, graph.insertConstant(weight));
  norm->replaceInput(3, graph.insertConstant(bias));
}

TEST(LayerNormFusion, TakesOneTrailingDimensionWithConstantFloatWeights) {
  auto graph = layer_norm_graph("[8]");
  constant_weight_and_bias(*graph, at::ones({8}), at::zeros({8}));
  EXPECT_EQ(tsrunner::detail::fuse_layer_norms(*graph), 1);
  EXPECT_EQ(count(*graph, "aten::layer_norm"), 0);
  ASSERT_EQ(count(*graph, "tsrunner::layer_norm"), 1);
  EXPECT_EQ(graph->outputs()[0]->node()->input(0), graph->inputs()[0]);
  graph->lint();
}

TEST(LayerNormFusion, LeavesOtherLayerNormsAsTheyAre) {
  const auto unchanged = [](const std::shared_ptr<torch::jit::Graph>& graph) {
    EXPECT_EQ(tsrunner::detail::fuse_layer_norms(*graph), 0);
    EXPECT_EQ(count(*graph, "aten::layer_norm"), 1);
    EXPECT_EQ(count(*graph, "tsrunner::layer_norm"), 0);
  };
  auto two_dimensions = layer_norm_graph("[2, 4]");
  constant_weight_and_bias(*two_dimensions, at::ones({2, 4}), at::zeros({2, 4}));
  unchanged(two_dimensions);
  auto wrong_size = layer_norm_graph("[8]");
  constant_weight_and_bias(*wrong_size, at::ones({4}), at::zeros({4}));
  unchanged(wrong_size);
  auto doubles = layer_norm_graph("[8]");
  constant_weight_and_bias(*doubles, at::ones({8}, at::kDouble), at::zeros({8}, at::kDouble));
  unchanged(doubles);
  unchanged(layer_norm_graph("[8]"));  // weights that are inputs: not a frozen model's
}

}  // namespace

namespace {

// One traced BERT self-attention after the Q/K/V merge: three head views of one GEMM output
// `qkv`, the attention, and the way back to [B, T, H x D]. `extra` is appended before the
// return (e.g. another use of a view) and `returned` replaces what is returned.
std::shared_ptr<torch::jit::Graph> self_attention_graph(const std::string& extra = "",
                                                        const std::string& returned = "%out") {
  const std::string ir = R"IR(
graph(%qkv : Tensor, %mask : Tensor, %x : Tensor):
  %zero : int = prim::Constant[value=0]()
  %one : int = prim::Constant[value=1]()
  %two : int = prim::Constant[value=2]()
  %three : int = prim::Constant[value=3]()
  %minus : int = prim::Constant[value=-1]()
  %d : int = prim::Constant[value=32]()
  %q_end : int = prim::Constant[value=64]()
  %k_end : int = prim::Constant[value=128]()
  %v_end : int = prim::Constant[value=192]()
  %scale : float = prim::Constant[value=0.17677669529663689]()
  %b : int = aten::size(%x, %zero)
  %t : int = aten::size(%x, %one)
  %shape : int[] = prim::ListConstruct(%b, %t, %minus, %d)
  %q_slice : Tensor = aten::slice(%qkv, %minus, %zero, %q_end, %one)
  %q_heads : Tensor = aten::reshape(%q_slice, %shape)
  %q : Tensor = aten::transpose(%q_heads, %one, %two)
  %k_slice : Tensor = aten::slice(%qkv, %minus, %q_end, %k_end, %one)
  %k_heads : Tensor = aten::reshape(%k_slice, %shape)
  %k : Tensor = aten::transpose(%k_heads, %one, %two)
  %v_slice : Tensor = aten::slice(%qkv, %minus, %k_end, %v_end, %one)
  %v_heads : Tensor = aten::reshape(%v_slice, %shape)
  %v : Tensor = aten::transpose(%v_heads, %one, %two)
  %q_len : int = aten::size(%q, %two)
  %a : Tensor = tsrunner::attention(%q, %k, %v, %mask, %scale)
  %a_b : int = aten::size(%a, %zero)
  %v_d : int = aten::size(%v, %three)
  %back_shape : int[] = prim::ListConstruct(%a_b, %minus, %q_len, %v_d)
  %back : Tensor = aten::reshape(%a, %back_shape)
  %swapped : Tensor = aten::transpose(%back, %one, %two)
  %packed : Tensor = aten::contiguous(%swapped, %zero)
  %out_shape : int[] = prim::ListConstruct(%b, %t, %minus)
  %merged : Tensor = aten::reshape(%packed, %out_shape)
  %out : Tensor = aten::contiguous(%merged, %zero)
)IR" + extra + "  return (" +
                         returned + ")";
  auto graph = std::make_shared<torch::jit::Graph>();
  torch::jit::parseIR(ir, graph.get());
  return graph;
}

TEST(SelfAttentionFusion, ReadsTheMergedGemmOutputInPlace) {
  auto graph = self_attention_graph();
  EXPECT_EQ(tsrunner::detail::fuse_self_attention(*graph), 1);
  graph->lint();
  ASSERT_EQ(count(*graph, "tsrunner::self_attention"), 1);
  for (const char* gone : {"tsrunner::attention", "aten::slice", "aten::transpose",
                           "aten::contiguous", "aten::reshape"}) {
    EXPECT_EQ(count(*graph, gone), 0) << gone;
  }
  const torch::jit::Node* fused = graph->outputs()[0]->node();
  ASSERT_EQ(fused->kind(), c10::Symbol::fromQualString("tsrunner::self_attention"));
  EXPECT_EQ(fused->input(0), graph->inputs()[0]);  // qkv
  EXPECT_EQ(fused->input(6), graph->inputs()[1]);  // the mask
  std::vector<int64_t> ranges;
  for (size_t i = 2; i < 6; ++i) ranges.push_back(torch::jit::toIValue(fused->input(i))->toInt());
  EXPECT_EQ(ranges, (std::vector<int64_t>{0, 64, 128, 64}));
}

TEST(SelfAttentionFusion, LeavesGraphsWhereAViewIsReadElsewhere) {
  const auto unchanged = [](const std::shared_ptr<torch::jit::Graph>& graph) {
    EXPECT_EQ(tsrunner::detail::fuse_self_attention(*graph), 0);
    EXPECT_EQ(count(*graph, "tsrunner::attention"), 1);
    EXPECT_EQ(count(*graph, "tsrunner::self_attention"), 0);
  };
  unchanged(self_attention_graph("", "%out, %k"));        // k is an output too
  unchanged(self_attention_graph("", "%out, %q_slice"));  // so is a slice
  unchanged(self_attention_graph("", "%out, %packed"));   // and the result's layout change
  unchanged(self_attention_graph("  %n : int = aten::size(%k, %zero)\n", "%out, %n"));
}

}  // namespace

namespace {

// Transformers' Conv1D (GPT-2): addmm(bias, x, weight [K, N]) with its weight and bias as
// inputs 0 and 2; `scalars` the beta and alpha constants.
std::shared_ptr<torch::jit::Graph> addmm_graph(const std::string& scalars) {
  const std::string ir = R"IR(
graph(%x : Tensor, %b_in : Tensor, %w_in : Tensor):
)IR" + scalars + R"IR(
  %y : Tensor = aten::addmm(%b_in, %x, %w_in, %beta, %alpha)
  return (%y))IR";
  auto graph = std::make_shared<torch::jit::Graph>();
  torch::jit::parseIR(ir, graph.get());
  return graph;
}

void constant_addmm_operands(torch::jit::Graph& graph, const at::Tensor& bias,
                             const at::Tensor& weight) {
  torch::jit::Node* addmm = graph.outputs()[0]->node();
  torch::jit::WithInsertPoint before(addmm);
  addmm->replaceInput(0, graph.insertConstant(bias));
  addmm->replaceInput(2, graph.insertConstant(weight));
}

const std::string kUnitScalars =
    "  %beta : int = prim::Constant[value=1]()\n  %alpha : int = prim::Constant[value=1]()";

TEST(AddmmToLinear, TakesConv1DWithConstantWeights) {
  auto graph = addmm_graph(kUnitScalars);
  const at::Tensor weight = at::randn({3, 5});  // [K, N]
  const at::Tensor bias = at::randn({5});
  constant_addmm_operands(*graph, bias, weight);
  tsrunner::detail::DerivedWeights derived;
  EXPECT_EQ(tsrunner::detail::addmm_to_linear(*graph, derived), 1);
  EXPECT_EQ(count(*graph, "aten::addmm"), 0);
  ASSERT_EQ(count(*graph, "aten::linear"), 1);
  torch::jit::Node* linear = graph->outputs()[0]->node();
  EXPECT_EQ(linear->input(0), graph->inputs()[0]);
  const at::Tensor linear_weight = torch::jit::toIValue(linear->input(1))->toTensor();
  EXPECT_TRUE(at::equal(linear_weight, weight.t()));  // aten::linear's [N, K]
  graph->lint();
  // Same numbers as the addmm it replaces (up to the summation order of two GEMM kernels).
  const at::Tensor x = at::randn({4, 3});
  EXPECT_TRUE(at::allclose(at::linear(x, linear_weight, bias), at::addmm(bias, x, weight),
                           /*rtol=*/1e-5, /*atol=*/1e-5));
}

TEST(AddmmToLinear, MethodsOfOneModelShareOneDerivedWeight) {
  // A generation export's forward, prefill and decode hold the same frozen weight: one
  // transposed copy serves them all (and so one packed copy, DerivedWeights' purpose).
  const at::Tensor weight = at::randn({3, 5});
  const at::Tensor bias = at::randn({5});
  tsrunner::detail::DerivedWeights derived;
  std::vector<at::Tensor> transposed;
  for (int method = 0; method < 2; ++method) {
    auto graph = addmm_graph(kUnitScalars);
    constant_addmm_operands(*graph, bias, weight);
    ASSERT_EQ(tsrunner::detail::addmm_to_linear(*graph, derived), 1);
    transposed.push_back(torch::jit::toIValue(graph->outputs()[0]->node()->input(1))->toTensor());
  }
  EXPECT_TRUE(transposed[0].is_same(transposed[1]));
}

// Two int8 Linear layers on one input (as an int8 export's query and key), each reshaped.
std::shared_ptr<torch::jit::Graph> sibling_int8_graph(const std::vector<at::Tensor>& constants) {
  const std::string ir = R"IR(
graph(%x : Tensor, %p1 : Tensor, %s1 : Tensor, %u1 : Tensor, %p2 : Tensor, %s2 : Tensor, %u2 : Tensor):
  %none : NoneType = prim::Constant()
  %n : int = prim::Constant[value=16]()
  %attr : str = prim::Constant[value="none"]()
  %shape : int[] = prim::Constant[value=[-1, 4, 4]]()
  %a : Tensor = tsrunner::linear_int8(%x, %p1, %s1, %u1, %none, %none, %n, %attr, %none, %none)
  %b : Tensor = tsrunner::linear_int8(%x, %p2, %s2, %u2, %none, %none, %n, %attr, %none, %none)
  %a4 : Tensor = aten::reshape(%a, %shape)
  %b4 : Tensor = aten::reshape(%b, %shape)
  return (%a4, %b4))IR";
  auto graph = std::make_shared<torch::jit::Graph>();
  torch::jit::parseIR(ir, graph.get());
  const std::vector<torch::jit::Value*> inputs(graph->inputs().begin() + 1, graph->inputs().end());
  torch::jit::WithInsertPoint at_start(graph->nodes().front());
  for (size_t i = 0; i < inputs.size(); ++i) {
    inputs[i]->replaceAllUsesWith(graph->insertConstant(constants[i]));
  }
  return graph;
}

TEST(Int8SiblingMerge, MethodsOfOneModelShareOneMergedWeight) {
  // An int8 export with buckets has one method per bucket, each holding the same layers: the
  // merged Q/K/V panels are made once for all of them.
  const at::Tensor panels = at::randint(-127, 127, {1, 8, 64}, at::kChar);
  const at::Tensor scales = at::rand({16});
  const at::Tensor sums = at::randint(-100, 100, {16}, at::kInt);
  const std::vector<at::Tensor> constants{panels, scales, sums, panels.clone(), scales, sums};
  tsrunner::detail::DerivedWeights derived;
  std::vector<at::Tensor> merged;
  for (int method = 0; method < 2; ++method) {
    auto graph = sibling_int8_graph(constants);
    ASSERT_EQ(tsrunner::detail::merge_sibling_int8_linears(*graph, derived), 1);
    ASSERT_EQ(count(*graph, "tsrunner::linear_int8"), 1);
    graph->lint();
    for (const torch::jit::Node* node : graph->nodes()) {
      if (node->kind() == c10::Symbol::fromQualString("tsrunner::linear_int8")) {
        merged.push_back(torch::jit::toIValue(node->input(1))->toTensor());
      }
    }
  }
  ASSERT_EQ(merged.size(), 2u);
  EXPECT_TRUE(merged[0].is_same(merged[1]));
  EXPECT_TRUE(at::equal(merged[0], at::cat({constants[0], constants[3]}, 0)));
}

TEST(AddmmToLinear, LeavesOtherAddmmCallsAsTheyAre) {
  const auto unchanged = [](const std::shared_ptr<torch::jit::Graph>& graph) {
    tsrunner::detail::DerivedWeights derived;
    EXPECT_EQ(tsrunner::detail::addmm_to_linear(*graph, derived), 0);
    EXPECT_EQ(count(*graph, "aten::addmm"), 1);
    EXPECT_EQ(count(*graph, "aten::linear"), 0);
  };
  unchanged(addmm_graph(kUnitScalars));  // weight and bias are inputs, not constants
  auto scaled = addmm_graph(
      "  %beta : int = prim::Constant[value=1]()\n  %alpha : int = prim::Constant[value=2]()");
  constant_addmm_operands(*scaled, at::randn({5}), at::randn({3, 5}));
  unchanged(scaled);
  auto matrix_bias = addmm_graph(kUnitScalars);
  constant_addmm_operands(*matrix_bias, at::randn({4, 5}), at::randn({3, 5}));
  unchanged(matrix_bias);
  auto doubles = addmm_graph(kUnitScalars);
  constant_addmm_operands(*doubles, at::randn({5}, at::kDouble), at::randn({3, 5}, at::kDouble));
  unchanged(doubles);
}

}  // namespace
