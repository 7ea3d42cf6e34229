#pragma once

#include <functional>
#include <string>

#include "kernel_settings.h"
#include "tsrunner/cpu_info.h"

namespace torch::jit {
struct Module;
}  // namespace torch::jit

namespace tsrunner::detail {

// What load chose: `path` is "onednn" (float32 Linear layers run on oneDNN's prepacked GEMM)
// or "default" (the graph as exported: LibTorch's aten::linear, MKL's sgemm); `reason` says
// why in a few words.
struct KernelPath {
  std::string path = "default";
  std::string reason;
  int packed_linears = 0;       // aten::linear calls now on oneDNN's prepacked GEMM
  int merged_groups = 0;        // sets of Linear layers on one input merged into one GEMM
  int fused_activations = 0;    // GELUs folded into a GEMM
  int folded_adds = 0;          // residual adds folded into a GEMM's epilogue
  int small_row_linears = 0;    // GEMMs that also take the small-row kernel at few rows
  int fused_attentions = 0;     // scaled_dot_product_attention calls on tsrunner::attention
  int attentions_in_place = 0;  // of those, reading the Q/K/V GEMM's output in place
  int fused_layer_norms = 0;    // aten::layer_norm calls on tsrunner::layer_norm
  int bf16_kernel_linears = 0;  // compute=bf16 GEMMs on tsrunner's AVX512-BF16 kernel
};

// Throws InvalidInput unless `engine` is "auto", "onednn" or "default".
void check_engine_name(const std::string& engine);
// Throws InvalidInput unless `compute` is "fp32" or "bf16".
void check_compute_name(const std::string& compute);
// Why compute=bf16 cannot run on this CPU (no AVX512_BF16, no AMX-BF16); empty when it can.
std::string bf16_declines();

// Rewrites `module` in place for the engine asked for ("auto", "onednn", "default"): freezes
// it (every method kept), then replaces each float32 aten::linear whose weight is a constant
// with mkldnn::_linear_pointwise on a weight packed now, for this CPU (never stored packed):
// Linear layers reading the same input merge into one GEMM, and a following GELU or residual
// add folds into the GEMM's epilogue. `smoke_test(module, min_rows)` then runs the rewritten
// module (again with at least `min_rows` GEMM rows when the small-row kernel took the first); when
// anything fails the module is left as loaded and one line goes to stderr. Auto takes oneDNN
// on x86-64 CPUs with AVX2 or better when the device is the CPU. `compute` "bf16" packs the
// weights in bfloat16 and runs those GEMMs in bf16: on tsrunner's own kernel where
// bf16_gemm_supported() (tsrunner::linear_bf16_panels; bf16_kernel=false declines it), else
// on oneDNN (tsrunner::linear_bf16); it throws InvalidInput with engine "default", off the
// CPU, or on a CPU without bf16 instructions. `kernels` picks tsrunner's own kernels (the
// runner's options, resolved once).
KernelPath apply_cpu_fast_path(torch::jit::Module& module, const std::string& engine,
                               const std::string& compute, bool on_cpu,
                               const KernelSettings& kernels,
                               const std::function<void(torch::jit::Module&, int64_t)>& smoke_test);

}  // namespace tsrunner::detail
