#pragma once

#include <cstdint>
#include <string>

#include "kernel_settings.h"

namespace tsrunner::detail {

// Which kernel runs what, decided at load from the CPU (kernels/cpu_isa.h) and the runner's
// kernel settings; the kernels themselves (kernels/) only say whether they can run here.

// What load chose: `path` is "onednn" (float32 Linear layers run on oneDNN's prepacked GEMM)
// or "default" (the graph as exported: LibTorch's aten::linear, MKL's sgemm); `reason` says
// why in a few words.
struct KernelPath {
  std::string path = "default";
  std::string reason;
  int packed_linears = 0;       // aten::linear calls now on oneDNN's prepacked GEMM
  int conv1d_linears = 0;       // of those, aten::addmm with constant weights (Conv1D) first
  int merged_groups = 0;        // sets of Linear layers on one input merged into one GEMM
  int fused_activations = 0;    // GELUs folded into a GEMM
  int folded_adds = 0;          // residual adds folded into a GEMM's epilogue
  int small_row_linears = 0;    // GEMMs that also take the small-row kernel at few rows
  int fused_attentions = 0;     // scaled_dot_product_attention calls on tsrunner::attention
  int attentions_in_place = 0;  // of those, reading the Q/K/V GEMM's output in place
  int fused_layer_norms = 0;    // aten::layer_norm calls on tsrunner::layer_norm
  int bf16_kernel_linears = 0;  // compute=bf16 GEMMs on tsrunner's AVX512-BF16 kernel
  int int8_linears = 0;         // int8 exports' tsrunner::linear_int8 calls (as exported)
};

// How the Linear rewrite (rewrites/linear_fusion.cc) packs each float32 Linear.
struct LinearPlan {
  bool bf16 = false;             // compute=bf16: bf16 weights, bf16 products
  bool bf16_panels = false;      // ... on tsrunner's AVX512-BF16 kernel rather than oneDNN's
  bool small_rows = false;       // fp32: the small-row kernel also takes calls of few rows
  int64_t small_gemm_rows = 48;  // up to this many rows
};

// The plan for compute "fp32" or "bf16" (bf16 = true) on this CPU with these settings.
LinearPlan plan_linears(bool bf16, const KernelSettings& kernels);

// Throws InvalidInput unless `kernel_path` is "auto", "onednn" or "default".
void check_kernel_path_name(const std::string& kernel_path);
// Throws InvalidInput unless `compute` is "fp32" or "bf16".
void check_compute_name(const std::string& compute);
// Why compute=bf16 cannot run on this CPU (no AVX512_BF16, no AMX-BF16); empty when it can.
std::string bf16_declines();
// Why auto does (or does not) take oneDNN here; empty when it does.
std::string auto_declines(bool on_cpu);

}  // namespace tsrunner::detail
