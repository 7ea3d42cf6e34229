#include "cpu_fast_path.h"

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cpu_isa.h"
#include "kernels/int8_gemm.h"
#include "rewrites/derived_weights.h"
#include "rewrites/fusion_passes.h"
#include "tsrunner/errors.h"

namespace tsrunner::detail {
namespace {

// Whether freezing could pay off: some method calls aten::linear or aten::addmm (Conv1D) and
// some weight is float32, or
// the export's Linear layers are int8 (tsrunner::linear_int8: its attention and layer norms
// still take tsrunner's kernels). Checked before freezing, which costs a large part of a second
// on a small BERT.
bool has_rewritable_linear(const torch::jit::Module& module) {
  bool float_weight = false;
  for (const at::Tensor& parameter : module.parameters()) {
    if (parameter.scalar_type() == at::kFloat && parameter.dim() == 2) float_weight = true;
  }
  const c10::Symbol int8_linear = c10::Symbol::fromQualString("tsrunner::linear_int8");
  for (const torch::jit::Module& submodule : module.modules()) {
    for (const torch::jit::Method& method : submodule.get_methods()) {
      for (const torch::jit::Node* node : method.graph()->nodes()) {
        if (node->kind() == int8_linear) return true;
        const bool gemm = node->kind() == c10::aten::linear || node->kind() == c10::aten::addmm;
        if (float_weight && gemm) return true;
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

// "; figures of forward; prefill: 25 GEMMs, 6 attentions and 13 layer norms rewritten; ...": the
// other methods of a generation export, each rewritten on its own graph (weights shared).
std::string other_methods(const std::vector<std::pair<std::string, KernelPath>>& per_method,
                          const std::string& main_name) {
  std::string text = "; figures of " + main_name;
  for (const auto& [name, counts] : per_method) {
    if (name == main_name) continue;
    text += "; " + name + ": " + std::to_string(counts.packed_linears) + " GEMMs, ";
    if (counts.int8_linears > 0) text += std::to_string(counts.int8_linears) + " int8 Linear, ";
    text += std::to_string(counts.fused_attentions) + " attentions and " +
            std::to_string(counts.fused_layer_norms) + " layer norms rewritten";
  }
  return text;
}

}  // namespace

KernelPath apply_cpu_fast_path(
    torch::jit::Module& module, const std::string& kernel_path, const std::string& compute,
    bool on_cpu, const KernelSettings& kernels,
    const std::function<void(torch::jit::Module&, int64_t)>& smoke_test) {
  KernelPath result;
  Int8Kernel int8_body = Int8Kernel::kGeneric;
  try {
    int8_body = int8_kernel();  // a bad TSR_TEST_INT8_KERNEL fails the load, not the first run
  } catch (const std::invalid_argument& error) {
    throw InvalidInput(error.what());
  }
  const bool bf16 = compute == "bf16";
  if (bf16 && kernel_path == "default") {
    throw InvalidInput("compute=bf16 runs on the oneDNN kernel path, not kernel_path=default");
  }
  if (kernel_path == "default") {
    result.reason = "kernel_path=default";
    return result;
  }
  const std::string declined = auto_declines(on_cpu);
  if (!declined.empty()) {
    if (kernel_path == "onednn") {
      throw InvalidInput("kernel_path=onednn is not available: " + declined);
    }
    if (bf16) throw InvalidInput("compute=bf16 is not available: " + declined);
    result.reason = declined;
    return result;
  }
  if (bf16 && !bf16_declines().empty()) {
    throw InvalidInput("compute=bf16 is not available: " + bf16_declines() +
                       " (oneDNN would emulate bf16, slower than fp32)");
  }
  try {
    if (!has_rewritable_linear(module)) {
      result.reason = "no float32 Linear layers";
      return result;
    }
    if (forced_failure()) throw std::runtime_error("TSR_TEST_FAIL_FAST_PATH=1");
    std::vector<std::string> methods;
    for (const torch::jit::Method& method : module.get_methods()) {
      methods.push_back(method.name());
    }
    torch::jit::Module fast = torch::jit::freeze(module, methods);
    const LinearPlan linear_plan = plan_linears(bf16, kernels);
    // Counted per method: a generation export's forward, prefill and decode each hold the
    // model's layers, and the reason describes one model, not their sum.
    std::vector<std::pair<std::string, KernelPath>> per_method;
    DerivedWeights derived;  // one packed copy of a weight for all the methods
    for (const torch::jit::Method& method : fast.get_methods()) {
      KernelPath counts;
      counts.conv1d_linears += addmm_to_linear(*method.graph(), derived);
      counts.merged_groups += merge_sibling_linears(*method.graph(), derived);
      pack_linears(*method.graph(), linear_plan, counts, derived);
      for (const torch::jit::Node* node : method.graph()->nodes()) {  // as exported
        if (node->kind() == c10::Symbol::fromQualString("tsrunner::linear_int8")) {
          ++counts.int8_linears;
        }
      }
      counts.merged_groups += merge_sibling_int8_linears(*method.graph(), derived);
      fold_int8_epilogues(*method.graph(), counts);
      using Attention = KernelSettings::Attention;
      if (kernels.attention != Attention::kOff) {
        counts.fused_attentions += fuse_attention(*method.graph());
      }
      if (kernels.attention == Attention::kInPlace) {
        counts.attentions_in_place += fuse_self_attention(*method.graph());
      }
      if (kernels.layer_norm) counts.fused_layer_norms += fuse_layer_norms(*method.graph());
      per_method.emplace_back(method.name(), counts);
    }
    if (per_method.empty()) {
      result.reason = "no methods to rewrite";
      return result;
    }
    // The reason's figures are forward's (what Runner::run calls), or the first method's.
    auto main_method = std::find_if(per_method.begin(), per_method.end(),
                                    [](const auto& entry) { return entry.first == "forward"; });
    if (main_method == per_method.end()) main_method = per_method.begin();
    KernelPath rewritten = main_method->second;
    bool anything_rewritten = false;
    for (const auto& [name, counts] : per_method) {
      anything_rewritten = anything_rewritten || counts.packed_linears > 0 ||
                           counts.fused_attentions > 0 || counts.fused_layer_norms > 0;
      rewritten.small_row_linears = std::max(rewritten.small_row_linears, counts.small_row_linears);
    }
    if (!anything_rewritten) {
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
                       kernel_path + "): " + std::to_string(rewritten.packed_linears) + " GEMMs, " +
                       std::to_string(rewritten.merged_groups) + " Q/K/V groups merged, " +
                       std::to_string(rewritten.fused_activations) + " GELUs and " +
                       std::to_string(rewritten.folded_adds) + " residual adds folded";
    if (rewritten.conv1d_linears > 0) {
      rewritten.reason +=
          "; " + std::to_string(rewritten.conv1d_linears) + " Conv1D addmm GEMMs taken as Linear";
    }
    if (rewritten.bf16_kernel_linears > 0) {
      rewritten.reason += "; on tsrunner's AVX512-BF16 kernel";
    }
    if (rewritten.int8_linears > 0) {
      rewritten.reason += "; " + std::to_string(rewritten.int8_linears) +
                          " int8 Linear layers on tsrunner::linear_int8 (" +
                          int8_kernel_name(int8_body) + ")";
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
    if (per_method.size() > 1) rewritten.reason += other_methods(per_method, main_method->first);
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
