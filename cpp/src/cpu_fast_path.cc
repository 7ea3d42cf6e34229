#include "cpu_fast_path.h"

#include <ATen/Config.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <vector>

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

namespace {

at::Tensor pack_linear_weight(const at::Tensor& weight) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("mkldnn::_reorder_linear_weight", "")
                             .typed<at::Tensor(const at::Tensor&, std::optional<int64_t>)>();
  return op.call(weight, std::nullopt);
}

std::optional<at::Tensor> constant_tensor(torch::jit::Value* value) {
  if (value->node()->kind() != c10::prim::Constant) return std::nullopt;
  const std::optional<c10::IValue> constant = torch::jit::toIValue(value);
  if (!constant || !constant->isTensor()) return std::nullopt;
  return constant->toTensor();
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

// Rewrites one graph; returns {linears packed, activations folded}.
std::pair<int, int> pack_linears(torch::jit::Graph& graph) {
  using torch::jit::Node;
  int packed = 0;
  int fused = 0;
  std::vector<Node*> linears;
  for (Node* node : graph.nodes()) {  // top-level only: traced graphs have no blocks here
    if (node->kind() == c10::aten::linear) linears.push_back(node);
  }
  for (Node* linear : linears) {
    const std::optional<at::Tensor> weight = constant_tensor(linear->input(1));
    if (!weight || weight->scalar_type() != at::kFloat || weight->dim() != 2 ||
        weight->layout() != at::kStrided) {
      continue;
    }
    torch::jit::Value* bias = linear->input(2);
    if (bias->type()->kind() != c10::TypeKind::NoneType) {
      const std::optional<at::Tensor> bias_tensor = constant_tensor(bias);
      if (!bias_tensor || bias_tensor->scalar_type() != at::kFloat) continue;
    }
    Node* gelu = sole_gelu_user(linear);
    torch::jit::WithInsertPoint guard(linear);
    // Graph::insertConstant refuses tensors without storage, which oneDNN's packed ones are.
    Node* packed_weight = graph.create(c10::prim::Constant);
    const at::Tensor packed_tensor = pack_linear_weight(*weight);
    packed_weight->t_(c10::attr::value, packed_tensor);
    packed_weight->output()->inferTypeFrom(packed_tensor);
    graph.insertNode(packed_weight);
    torch::jit::Value* attr = graph.insertConstant(gelu ? "gelu" : "none");
    Node* no_scalars = graph.createList(c10::OptionalType::create(c10::NumberType::get()), {});
    graph.insertNode(no_scalars);
    torch::jit::Value* algorithm =
        gelu ? gelu->input(1) : graph.insertConstant(c10::IValue());  // "none" / "tanh"
    Node* fast = graph.create(
        c10::Symbol::fromQualString("mkldnn::_linear_pointwise"),
        {linear->input(0), packed_weight->output(), bias, attr, no_scalars->output(), algorithm},
        1);
    graph.insertNode(fast);
    Node* replaced = gelu ? gelu : linear;
    fast->output()->setType(replaced->output()->type());
    fast->output()->copyMetadata(replaced->output());
    replaced->output()->replaceAllUsesWith(fast->output());
    if (gelu) gelu->destroy();
    linear->destroy();
    ++packed;
    if (gelu) ++fused;
  }
  torch::jit::EliminateDeadCode(graph.block());
  return {packed, fused};
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

KernelPath apply_cpu_fast_path(torch::jit::Module& module, const std::string& engine, bool on_cpu,
                               const std::function<void(torch::jit::Module&)>& smoke_test) {
  KernelPath result;
  if (engine == "default") {
    result.reason = "engine=default";
    return result;
  }
  const std::string declined = auto_declines(on_cpu);
  if (!declined.empty()) {
    if (engine == "onednn") throw InvalidInput("engine=onednn is not available: " + declined);
    result.reason = declined;
    return result;
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
      const auto [packed, fused] = pack_linears(*method.graph());
      rewritten.packed_linears += packed;
      rewritten.fused_activations += fused;
    }
    if (rewritten.packed_linears == 0) {
      result.reason = "no float32 Linear with constant weights";
      return result;
    }
    smoke_test(fast);
    module = fast;
    rewritten.path = "onednn";
    rewritten.reason = "oneDNN prepacked linear (" + engine + ")";
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
