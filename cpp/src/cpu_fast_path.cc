#include "cpu_fast_path.h"

#include <ATen/Config.h>
#include <ATen/ThreadLocalState.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/library.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <vector>

#include "bf16_gemm.h"
#include "small_attention.h"
#include "small_gemm.h"
#include "small_layer_norm.h"
#include "tsrunner/errors.h"

namespace tsrunner::detail {

namespace {

bool has_flag(const std::string& flags, const std::string& flag) {
  std::istringstream words(flags);
  std::string word;
  while (words >> word) {
    if (word == flag) return true;
  }
  return false;
}

}  // namespace

CpuInfo read_cpu_info() {
  CpuInfo info;
  info.model = "unknown";
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  bool have_model = false;
  bool have_flags = false;
  while (std::getline(cpuinfo, line) && !(have_model && have_flags)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (key == "model name" && !have_model) {
      info.model = value;
      have_model = true;
    } else if (key == "flags" && !have_flags) {
      info.avx2 = has_flag(value, "avx2");
      info.avx512 = has_flag(value, "avx512f");
      info.avx512_bf16 = has_flag(value, "avx512_bf16");
      info.flags = value;
      have_flags = true;
    }
  }
  return info;
}

// Why auto does (or does not) take oneDNN here; empty when it does.
std::string auto_declines(bool on_cpu) {
  if (!on_cpu) return "device is not the CPU";
  if (!AT_MKLDNN_ENABLED()) return "LibTorch built without oneDNN";
#if !defined(__x86_64__)
  return "oneDNN path measured on x86-64 only";
#else
  if (!cpu_info().avx2) return "CPU lacks AVX2";
  return "";
#endif
}

// Why compute=bf16 cannot run here; empty when it can. Without AVX512_BF16 or AMX, oneDNN
// emulates bf16 GEMMs with fp32 instructions plus conversions: slower than fp32, so refused.
std::string bf16_declines() {
  const CpuInfo& cpu = cpu_info();
  const char* hook = std::getenv("TSR_TEST_CPU_WITHOUT_BF16");  // docs/testing.md
  const bool hidden = hook != nullptr && std::string(hook) == "1";
  if (!hidden && (cpu.avx512_bf16 || cpu.has_flag("amx_bf16"))) return "";
  return "this CPU (" + cpu.model + ") has neither AVX512_BF16 nor AMX-BF16";
}

namespace {

at::Tensor pack_linear_weight(const at::Tensor& weight) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("mkldnn::_reorder_linear_weight", "")
                             .typed<at::Tensor(const at::Tensor&, std::optional<int64_t>)>();
  return op.call(weight, std::nullopt);
}

// mkldnn::_linear_pointwise(x, packed_weight, bias, attr, scalars, algorithm): oneDNN's GEMM on
// a packed weight with an optional unary epilogue.
const c10::TypedOperatorHandle<at::Tensor(
    const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&, c10::string_view,
    c10::List<std::optional<at::Scalar>>, std::optional<c10::string_view>)>&
linear_pointwise() {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("mkldnn::_linear_pointwise", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                            c10::string_view, c10::List<std::optional<at::Scalar>>,
                            std::optional<c10::string_view>)>();
  return op;
}

// tsrunner::linear(x, packed_weight, panels, bias, attr, algorithm, other): a float32 Linear
// with a GELU (attr "gelu", `algorithm` its approximation) or a residual add (`other`) folded
// in. Few rows (M <= small_rows, the runner's small_gemm_rows) run on the small-row kernel over
// `panels` (given when the CPU has it); the rest on oneDNN's GEMM over `packed_weight`. The
// residual is added in the GEMM's epilogue when it has the output's exact shape and dtype, checked
// per call: a traced graph does not say whether `other` broadcasts, and at another shape it may;
// then the GEMM is followed by aten::add, as the graph did.
at::Tensor linear(const at::Tensor& x, const at::Tensor& packed_weight,
                  const std::optional<at::Tensor>& panels, const std::optional<at::Tensor>& bias,
                  c10::string_view attr, std::optional<c10::string_view> algorithm,
                  const std::optional<at::Tensor>& other, int64_t small_rows) {
  TORCH_CHECK(!other || attr == "none", "tsrunner::linear folds a GELU or a residual, not both");
  std::vector<int64_t> output_shape(x.sizes().begin(), x.sizes().end());
  if (!output_shape.empty()) output_shape.back() = packed_weight.size(0);
  const bool other_fits = other && other->sizes() == c10::IntArrayRef(output_shape) &&
                          other->scalar_type() == at::kFloat && x.scalar_type() == at::kFloat;
  const int64_t k = x.dim() > 0 ? x.size(-1) : 0;
  const int64_t rows = k > 0 ? x.numel() / k : 0;
  const int64_t n = packed_weight.size(0);
  if (panels && x.scalar_type() == at::kFloat && rows > 0 && rows <= small_rows &&
      (attr == "none" || attr == "gelu")) {
    // The op is public (torch.ops.tsrunner.linear): what the kernel reads is checked, not assumed.
    TORCH_CHECK(panels->dim() == 3 && panels->size(0) == (n + 15) / 16 && panels->size(1) == k &&
                    panels->size(2) == 16 && panels->scalar_type() == at::kFloat &&
                    panels->is_contiguous(),
                "tsrunner::linear: panels must be pack_panels(weight) of the packed weight's "
                "[N, K] = [",
                n, ", ", k, "], got ", panels->sizes());
    TORCH_CHECK(!bias || (bias->numel() == n && bias->scalar_type() == at::kFloat),
                "tsrunner::linear: bias must hold ", n, " float32 values");
    const at::Tensor input = x.contiguous();
    const at::Tensor bias_values = bias ? bias->contiguous() : at::Tensor();
    const at::Tensor residual = other_fits ? other->contiguous() : at::Tensor();
    at::Tensor result = at::empty(output_shape, x.options());
    const at::Tensor matrix = result.view({rows, n});
    // GELU on each thread's own columns, inside the GEMM's parallel region: at 16 rows one
    // at::gelu_ over the output is too small for LibTorch to split and ran on one core.
    // OpenMP's threads do not inherit the caller's thread-local modes (inference mode: the
    // result is an inference tensor there), so they take them over first.
    std::optional<at::ThreadLocalState> caller_state;
    if (attr == "gelu") caller_state.emplace();
    const auto gelu_columns = [&](int64_t first, int64_t end) {
      const at::ThreadLocalStateGuard same_modes(*caller_state);
      at::Tensor columns = matrix.narrow(1, first, end - first);
      at::gelu_(columns, algorithm.value_or("none"));
    };
    small_gemm(input.data_ptr<float>(), rows, k, panels->data_ptr<float>(), n,
               bias_values.defined() ? bias_values.data_ptr<float>() : nullptr,
               residual.defined() ? residual.data_ptr<float>() : nullptr, result.data_ptr<float>(),
               attr == "gelu" ? std::function<void(int64_t, int64_t)>(gelu_columns) : nullptr);
    return other && !other_fits ? result.add(*other) : result;
  }
  if (other_fits) {
    static const auto fused =
        c10::Dispatcher::singleton()
            .findSchemaOrThrow("mkldnn::_linear_pointwise", "binary")
            .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                              const std::optional<at::Tensor>&, c10::string_view)>();
    return fused.call(x, *other, packed_weight, bias, "add");
  }
  at::Tensor result = linear_pointwise().call(x, packed_weight, bias, attr,
                                              c10::List<std::optional<at::Scalar>>(), algorithm);
  return other ? result.add(*other) : result;
}

// tsrunner::linear_bf16(x, packed_weight, bias, attr, algorithm, other): a float32 Linear
// computed in bfloat16 (compute=bf16): x rounded to bf16, the GEMM on bf16 weights packed at
// load with float32 accumulation and bias, an optional GELU (attr "gelu") in its epilogue, the
// result widened back to float32 and, if `other` is given, the residual added in float32 (a
// bf16 residual stream would lose more than the GEMM does).
at::Tensor linear_bf16(const at::Tensor& x, const at::Tensor& packed_weight,
                       const std::optional<at::Tensor>& bias, c10::string_view attr,
                       std::optional<c10::string_view> algorithm,
                       const std::optional<at::Tensor>& other) {
  at::Tensor result = linear_pointwise()
                          .call(x.to(at::kBFloat16), packed_weight, bias, attr,
                                c10::List<std::optional<at::Scalar>>(), algorithm)
                          .to(at::kFloat);
  if (!other) return result;
  if (other->sizes() == result.sizes() && other->scalar_type() == at::kFloat) {
    return result.add_(*other);
  }
  return result.add(*other);
}

// tsrunner::linear_bf16_panels(x, panels, out_features, bias, attr, algorithm, other): what
// linear_bf16 computes, on tsrunner's own bf16 kernel (bf16_gemm.h) over pack_bf16_panels'
// weight, for CPUs with AVX512_BF16 and no AMX; the float32 sum is not rounded to bf16. The
// panels do not record N or K: an out_features or a K that differ from the weight's but give
// the same panel shape compute a wrong Linear, though every read stays inside the panels.
at::Tensor linear_bf16_panels(const at::Tensor& x, const at::Tensor& panels, int64_t out_features,
                              const std::optional<at::Tensor>& bias, c10::string_view attr,
                              std::optional<c10::string_view> algorithm,
                              const std::optional<at::Tensor>& other) {
  TORCH_CHECK(attr == "none" || attr == "gelu",
              "tsrunner::linear_bf16_panels: attr must be none or gelu, not ", attr);
  TORCH_CHECK(!other || attr == "none",
              "tsrunner::linear_bf16_panels folds a GELU or a residual, not both");
  // Without the instruction the kernel would die of SIGILL (the test hook of bf16_declines
  // counts: the refusal is testable on any CPU).
  TORCH_CHECK(bf16_declines().empty() && cpu_info().avx512_bf16,
              "tsrunner::linear_bf16_panels needs a CPU with AVX512_BF16; this one (",
              cpu_info().model, ") has none");
  TORCH_CHECK(x.scalar_type() == at::kFloat && x.dim() >= 1,
              "tsrunner::linear_bf16_panels: x must be float32");
  for (const at::Tensor* tensor :
       {&x, &panels, bias ? &*bias : nullptr, other ? &*other : nullptr}) {
    TORCH_CHECK(tensor == nullptr || tensor->device().is_cpu(),
                "tsrunner::linear_bf16_panels runs on the CPU; got a tensor on ", tensor->device());
  }
  const int64_t k = x.size(-1);
  const int64_t n = out_features;
  // The op is public (torch.ops.tsrunner.linear_bf16_panels): what the kernel reads is checked.
  TORCH_CHECK(n > 0 && panels.dim() == 4 && panels.size(0) == (n + 15) / 16 &&
                  panels.size(1) == (k + 1) / 2 && panels.size(2) == 16 && panels.size(3) == 2 &&
                  panels.scalar_type() == at::kBFloat16 && panels.is_contiguous(),
              "tsrunner::linear_bf16_panels: panels must be pack_bf16_panels(weight) of a "
              "weight [N, K] = [",
              n, ", ", k, "], got ", panels.sizes());
  TORCH_CHECK(!bias || (bias->numel() == n && bias->scalar_type() == at::kFloat),
              "tsrunner::linear_bf16_panels: bias must hold ", n, " float32 values");
  std::vector<int64_t> output_shape(x.sizes().begin(), x.sizes().end());
  output_shape.back() = n;
  const bool other_fits = other && other->sizes() == c10::IntArrayRef(output_shape) &&
                          other->scalar_type() == at::kFloat;
  const int64_t rows = k > 0 ? x.numel() / k : 0;
  if (k == 0) {  // an empty sum: the bias alone, as aten::linear gives
    at::Tensor sum = at::zeros(output_shape, x.options());
    if (bias) sum.add_(*bias);
    if (attr == "gelu") sum = at::gelu(sum, algorithm.value_or("none"));
    return other ? sum.add(*other) : sum;
  }
  at::Tensor result = at::empty(output_shape, x.options());
  if (rows == 0) return other && !other_fits ? result.add(*other) : result;
  const at::Tensor input = x.contiguous();
  const at::Tensor bias_values = bias ? bias->contiguous() : at::Tensor();
  const at::Tensor residual = other_fits ? other->contiguous() : at::Tensor();
  const at::Tensor matrix = result.view({rows, n});
  // As in tsrunner::linear: OpenMP's threads take over the caller's thread-local modes first.
  std::optional<at::ThreadLocalState> caller_state;
  if (attr == "gelu") caller_state.emplace();
  const auto gelu_rows = [&](int64_t row, int64_t row_end) {
    const at::ThreadLocalStateGuard same_modes(*caller_state);
    at::Tensor rows_written = matrix.narrow(0, row, row_end - row);
    at::gelu_(rows_written, algorithm.value_or("none"));
  };
  bf16_gemm(input.data_ptr<float>(), rows, k, panels.const_data_ptr<at::BFloat16>(), n,
            bias_values.defined() ? bias_values.data_ptr<float>() : nullptr,
            residual.defined() ? residual.data_ptr<float>() : nullptr, result.data_ptr<float>(),
            attr == "gelu" ? Bf16GemmFinish(gelu_rows) : nullptr);
  return other && !other_fits ? result.add(*other) : result;
}

TORCH_LIBRARY(tsrunner, library) {
  library.def(torch::schema("linear(Tensor x, Tensor packed_weight, Tensor? panels, Tensor? bias, "
                            "str attr, str? algorithm, Tensor? other, int small_rows=48) -> Tensor",
                            c10::AliasAnalysisKind::FROM_SCHEMA),
              &linear);
  library.def(
      torch::schema("pack_panels(Tensor weight) -> Tensor", c10::AliasAnalysisKind::FROM_SCHEMA),
      &pack_panels);
  library.def(torch::schema("pack_bf16_panels(Tensor weight) -> Tensor",
                            c10::AliasAnalysisKind::FROM_SCHEMA),
              &pack_bf16_panels);
  library.def(torch::schema("linear_bf16_panels(Tensor x, Tensor panels, int out_features, "
                            "Tensor? bias, str attr, str? algorithm, Tensor? other) -> Tensor",
                            c10::AliasAnalysisKind::FROM_SCHEMA),
              &linear_bf16_panels);
  library.def(torch::schema("linear_bf16(Tensor x, Tensor packed_weight, Tensor? bias, str attr, "
                            "str? algorithm, Tensor? other) -> Tensor",
                            c10::AliasAnalysisKind::FROM_SCHEMA),
              &linear_bf16);
}

std::optional<at::Tensor> constant_tensor(torch::jit::Value* value) {
  if (value->node()->kind() != c10::prim::Constant) return std::nullopt;
  const std::optional<c10::IValue> constant = torch::jit::toIValue(value);
  if (!constant || !constant->isTensor()) return std::nullopt;
  return constant->toTensor();
}

// The constant float32 2-D weight of an aten::linear, if it has one (and a constant float32
// bias or none): what can be packed at load.
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

// The GELU that alone consumes `linear`'s output, if any: it folds into the GEMM's epilogue.
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

// The tensor + tensor aten::add (alpha 1) that alone consumes `linear`'s output, if any: a
// residual connection, folded into the GEMM by tsrunner::linear.
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

// Whether every use of `value` reshapes it (aten::view or aten::reshape): then it can be a
// slice of a wider GEMM's output, a strided view, once the views become reshapes.
bool only_reshaped(torch::jit::Value* value) {
  if (value->uses().empty()) return false;
  for (const torch::jit::Use& use : value->uses()) {
    const c10::Symbol kind = use.user->kind();
    if ((kind != c10::aten::view && kind != c10::aten::reshape) || use.offset != 0) return false;
  }
  return true;
}

// Merges the packable Linear layers that read the same input (attention's query, key and
// value) into one GEMM over their concatenated weights, each former output a slice of its
// result: one wider GEMM keeps both cores busier than three narrow ones at short sequences.
// Returns the number of groups merged.
int merge_sibling_linears(torch::jit::Graph& graph) {
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
    // Nodes are destroyed only after every insert-point guard is gone: a guard restores the
    // previous point when it ends, which must still exist.
    std::vector<Node*> replaced;
    {
      Node* first = group.front();  // graph order: the merged GEMM goes where the first was
      torch::jit::WithInsertPoint before_first(first);
      Value* weight = graph.insertConstant(at::cat(weights, 0));
      Value* bias = with_bias ? graph.insertConstant(at::cat(biases, 0)) : first->input(2);
      Node* wide = graph.insertNode(graph.create(c10::aten::linear, {input, weight, bias}, 1));
      wide->output()->setType(first->output()->type());
      int64_t start = 0;
      for (Node* linear : group) {
        const int64_t width = constant_tensor(linear->input(1))->size(0);
        graph.setInsertPoint(linear);
        Value* part = graph.insert(c10::aten::slice, {wide->output(), -1, start, start + width, 1});
        part->setType(linear->output()->type());
        start += width;
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
    ++merged_groups;
  }
  return merged_groups;
}

// Rewrites one graph's packable Linear layers onto oneDNN (in bfloat16 when `bf16`); counts
// what it did into `path`.
void pack_linears(torch::jit::Graph& graph, bool bf16, const KernelSettings& kernels,
                  KernelPath& path) {
  using torch::jit::Node;
  const bool small_rows = !bf16 && small_gemm_supported() && kernels.small_gemm_rows > 0;
  // bf16_kernel=false keeps compute=bf16 on oneDNN's bf16 GEMMs where tsrunner's kernel would
  // run (docs/cli.md): the A/B that measures the kernel, and a way back if it misbehaves.
  const bool bf16_panels = bf16 && bf16_gemm_supported() && kernels.bf16_kernel;
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
    if (bf16_panels) {  // tsrunner's bf16 kernel for every row count; no oneDNN copy
      torch::jit::Value* panels = graph.insertConstant(pack_bf16_panels(*weight));
      torch::jit::Value* out_features = graph.insertConstant(weight->size(0));
      fast =
          graph.create(c10::Symbol::fromQualString("tsrunner::linear_bf16_panels"),
                       {linear->input(0), panels, out_features, bias, attr, algorithm, other}, 1);
      ++path.bf16_kernel_linears;
    } else {
      // Graph::insertConstant refuses tensors without storage, which oneDNN's packed ones are.
      Node* packed_weight = graph.create(c10::prim::Constant);
      const at::Tensor packed_tensor =
          pack_linear_weight(bf16 ? weight->to(at::kBFloat16) : *weight);
      packed_weight->t_(c10::attr::value, packed_tensor);
      packed_weight->output()->inferTypeFrom(packed_tensor);
      graph.insertNode(packed_weight);
      if (bf16) {
        fast = graph.create(
            c10::Symbol::fromQualString("tsrunner::linear_bf16"),
            {linear->input(0), packed_weight->output(), bias, attr, algorithm, other}, 1);
      } else {
        torch::jit::Value* panels = graph.insertConstant(c10::IValue());
        if (small_rows) {
          panels = graph.insertConstant(pack_panels(*weight));
          ++path.small_row_linears;
        }
        torch::jit::Value* limit = graph.insertConstant(kernels.small_gemm_rows);
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

// Whether freezing could pay off: some method calls aten::linear and some weight is float32.
// Checked before freezing, which costs a large part of a second on a small BERT.
bool has_float_linear(const torch::jit::Module& module) {
  bool float_weight = false;
  for (const at::Tensor& parameter : module.parameters()) {
    if (parameter.scalar_type() == at::kFloat && parameter.dim() == 2) float_weight = true;
  }
  if (!float_weight) return false;
  for (const torch::jit::Module& submodule : module.modules()) {
    for (const torch::jit::Method& method : submodule.get_methods()) {
      for (const torch::jit::Node* node : method.graph()->nodes()) {
        if (node->kind() == c10::aten::linear) return true;
      }
    }
  }
  return false;
}

// A test hook (docs/testing.md): makes the rewrite fail so the fallback can be tested.
bool forced_failure() {
  const char* value = std::getenv("TSR_TEST_FAIL_FAST_PATH");
  return value != nullptr && std::string(value) == "1";
}

}  // namespace

void check_engine_name(const std::string& engine) {
  if (engine != "auto" && engine != "onednn" && engine != "default") {
    throw InvalidInput("unknown engine \"" + engine + "\" (expected auto, onednn or default)");
  }
}

void check_compute_name(const std::string& compute) {
  if (compute != "fp32" && compute != "bf16") {
    throw InvalidInput("unknown compute \"" + compute + "\" (expected fp32 or bf16)");
  }
}

KernelPath apply_cpu_fast_path(
    torch::jit::Module& module, const std::string& engine, const std::string& compute, bool on_cpu,
    const KernelSettings& kernels,
    const std::function<void(torch::jit::Module&, int64_t)>& smoke_test) {
  KernelPath result;
  const bool bf16 = compute == "bf16";
  if (bf16 && engine == "default") {
    throw InvalidInput("compute=bf16 runs on the oneDNN engine, not engine=default");
  }
  if (engine == "default") {
    result.reason = "engine=default";
    return result;
  }
  const std::string declined = auto_declines(on_cpu);
  if (!declined.empty()) {
    if (engine == "onednn") throw InvalidInput("engine=onednn is not available: " + declined);
    if (bf16) throw InvalidInput("compute=bf16 is not available: " + declined);
    result.reason = declined;
    return result;
  }
  if (bf16 && !bf16_declines().empty()) {
    throw InvalidInput("compute=bf16 is not available: " + bf16_declines() +
                       " (oneDNN would emulate bf16, slower than fp32)");
  }
  try {
    if (!has_float_linear(module)) {
      result.reason = "no float32 Linear layers";
      return result;
    }
    if (forced_failure()) throw std::runtime_error("TSR_TEST_FAIL_FAST_PATH=1");
    std::vector<std::string> methods;
    for (const torch::jit::Method& method : module.get_methods()) {
      methods.push_back(method.name());
    }
    torch::jit::Module fast = torch::jit::freeze(module, methods);
    KernelPath rewritten;
    for (const torch::jit::Method& method : fast.get_methods()) {
      rewritten.merged_groups += merge_sibling_linears(*method.graph());
      pack_linears(*method.graph(), bf16, kernels, rewritten);
      using Attention = KernelSettings::Attention;
      if (kernels.attention != Attention::kOff) {
        rewritten.fused_attentions += fuse_attention(*method.graph());
      }
      if (kernels.attention == Attention::kInPlace) {
        rewritten.attentions_in_place += fuse_self_attention(*method.graph());
      }
      if (kernels.layer_norm) rewritten.fused_layer_norms += fuse_layer_norms(*method.graph());
    }
    if (rewritten.packed_linears == 0) {
      result.reason = "no float32 Linear with constant weights";
      return result;
    }
    smoke_test(fast, 0);
    // The first run had few rows: where those took the small-row kernel, oneDNN's GEMMs run
    // once too, on more rows than its limit.
    if (rewritten.small_row_linears > 0) smoke_test(fast, kernels.small_gemm_rows + 1);
    module = fast;
    rewritten.path = "onednn";
    rewritten.reason = std::string(bf16 ? "oneDNN prepacked linear, bf16 compute ("
                                        : "oneDNN prepacked linear (") +
                       engine + "): " + std::to_string(rewritten.packed_linears) + " GEMMs, " +
                       std::to_string(rewritten.merged_groups) + " Q/K/V groups merged, " +
                       std::to_string(rewritten.fused_activations) + " GELUs and " +
                       std::to_string(rewritten.folded_adds) + " residual adds folded";
    if (rewritten.bf16_kernel_linears > 0) {
      rewritten.reason += "; on tsrunner's AVX512-BF16 kernel";
    }
    if (rewritten.small_row_linears > 0) {
      rewritten.reason += "; up to " + std::to_string(kernels.small_gemm_rows) +
                          " rows on the small-row AVX-512 kernel";
    }
    if (rewritten.fused_attentions > 0) {
      rewritten.reason += "; " + std::to_string(rewritten.fused_attentions) +
                          " attentions on the short-sequence kernel";
      if (rewritten.attentions_in_place > 0) {
        rewritten.reason += " (" + std::to_string(rewritten.attentions_in_place) +
                            " reading the Q/K/V GEMM's output in place)";
      }
    }
    if (rewritten.fused_layer_norms > 0) {
      rewritten.reason +=
          "; " + std::to_string(rewritten.fused_layer_norms) + " layer norms on the few-row kernel";
    }
    return rewritten;
  } catch (const std::exception& error) {
    std::string why = error.what();
    why = why.substr(0, why.find('\n'));
    std::cerr << "tsrunner: oneDNN fast path failed, running the plain graph: " << why << "\n";
    result.reason = "fast path failed: " + why;
    return result;
  }
}

}  // namespace tsrunner::detail

namespace tsrunner {

bool CpuInfo::has_flag(const std::string& flag) const { return detail::has_flag(flags, flag); }

const CpuInfo& cpu_info() {
  static const CpuInfo info = detail::read_cpu_info();
  return info;
}

std::string auto_engine() { return detail::auto_declines(true).empty() ? "onednn" : "default"; }

std::string auto_engine_reason() {
  const std::string declined = detail::auto_declines(true);
  return declined.empty() ? "x86-64 CPU with AVX2 or better, oneDNN available" : declined;
}

}  // namespace tsrunner
