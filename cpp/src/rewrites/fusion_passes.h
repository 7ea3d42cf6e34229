#pragma once

#include "kernel_policy.h"

#include <cstdint>
#include <vector>

namespace torch::jit {
struct Graph;
struct Node;
struct Value;
}  // namespace torch::jit

namespace tsrunner::detail {

class DerivedWeights;

// The graph rewrites load runs on a frozen TorchScript graph (cpu_fast_path.cc decides which):
// each replaces a pattern of LibTorch ops with one of tsrunner's ops (ops/register_ops.cc) and
// leaves anything it does not recognise as it is. Top-level nodes only: traced graphs have no
// blocks where these patterns occur.

// Rewrites each aten::addmm(bias, x, weight) with a constant float32 weight [K, N] and bias [N]
// (beta and alpha 1) as aten::linear(x, weight^T, bias): Transformers' Conv1D (GPT-2's every
// GEMM but the LM head) then takes the Linear rewrites below. Returns how many.
int addmm_to_linear(torch::jit::Graph& graph, DerivedWeights& derived);

// Merges the packable Linear layers that read the same input (attention's query, key and
// value) into one GEMM over their concatenated weights, each former output a slice of its
// result. Returns the number of groups merged.
int merge_sibling_linears(torch::jit::Graph& graph, DerivedWeights& derived);

// Merges the tsrunner::linear_int8 calls of an int8 export that read the same input with the
// same smoothing (attention's query, key and value, smoothed alike at export) into one call
// over their concatenated panels, as merge_sibling_linears does for float32: one quantization
// of the input, one GEMM, and the Q/K/V layout tsrunner::self_attention reads in place.
// The merged tensors come from `derived`, so the methods of one model share them.
// Returns the number of groups merged.
int merge_sibling_int8_linears(torch::jit::Graph& graph, DerivedWeights& derived);

// Folds the GELU or the residual add that alone follows a tsrunner::linear_int8 into its
// epilogue (its attr / other arguments); counts them into `path`.
void fold_int8_epilogues(torch::jit::Graph& graph, KernelPath& path);

// Replaces the outputs of `group` (Linear nodes of one input, graph order) with consecutive
// column slices of `wide` (their merged GEMM, inserted before the first), `widths[i]` columns
// each, turning their views into reshapes; the nodes of `group` are destroyed.
void split_merged_output(torch::jit::Graph& graph, const std::vector<torch::jit::Node*>& group,
                         torch::jit::Value* wide, const std::vector<int64_t>& widths);

// Rewrites each float32 aten::linear with constant weights onto tsrunner::linear (or, per
// `plan`, linear_bf16 / linear_bf16_panels) with the weight packed now, folding a sole GELU or
// residual add that follows it; counts what it did into `path`.
void pack_linears(torch::jit::Graph& graph, const LinearPlan& plan, KernelPath& path,
                  DerivedWeights& derived);

// Replaces each aten::scaled_dot_product_attention in `graph` whose dropout is the constant 0,
// is_causal and enable_gqa the constant false and scale a constant (or None) with
// tsrunner::attention on the same inputs; anything else is left as it is. Returns how many.
int fuse_attention(torch::jit::Graph& graph);

// Replaces each tsrunner::attention whose q, k and v are head views of one [B, T, C] tensor
// (slice, reshape, transpose 1-2: the merged Q/K/V GEMM's output) and whose result goes back
// through reshape, transpose 1-2, contiguous, reshape, contiguous, with
// tsrunner::self_attention: the ~18 view and size nodes per layer go. Anything else is left as
// it is. Returns how many.
int fuse_self_attention(torch::jit::Graph& graph);

// Replaces each aten::layer_norm over one trailing dimension whose weight and bias are constant
// float32 vectors of that size and whose eps is a constant with tsrunner::layer_norm; leaves
// any other call as it is (RunnerOptions::fused_layer_norm=false skips it). Returns how many.
int fuse_layer_norms(torch::jit::Graph& graph);

}  // namespace tsrunner::detail
