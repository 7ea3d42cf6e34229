// Every custom op tsrunner's graphs call, in one place: the schemas are the contract between the
// load-time rewrites (rewrites/) and the kernels (kernels/), and what Python reaches as
// torch.ops.tsrunner.*.
#include <torch/library.h>

#include "kernels/bf16_gemm.h"
#include "kernels/small_attention.h"
#include "kernels/small_gemm.h"
#include "kernels/small_layer_norm.h"
#include "ops/linear_int8.h"
#include "ops/linear_ops.h"

namespace tsrunner::detail {
namespace {

TORCH_LIBRARY(tsrunner, library) {
  library.def(torch::schema("linear(Tensor x, Tensor packed_weight, Tensor? panels, Tensor? bias, "
                            "str attr, str? algorithm, Tensor? other, int small_rows=48) -> Tensor",
                            c10::AliasAnalysisKind::FROM_SCHEMA),
              &linear_op);
  library.def(
      torch::schema("pack_panels(Tensor weight) -> Tensor", c10::AliasAnalysisKind::FROM_SCHEMA),
      &pack_panels);
  library.def(torch::schema("pack_bf16_panels(Tensor weight) -> Tensor",
                            c10::AliasAnalysisKind::FROM_SCHEMA),
              &pack_bf16_panels);
  library.def(torch::schema("linear_bf16_panels(Tensor x, Tensor panels, int out_features, "
                            "Tensor? bias, str attr, str? algorithm, Tensor? other) -> Tensor",
                            c10::AliasAnalysisKind::FROM_SCHEMA),
              &linear_bf16_panels_op);
  library.def(torch::schema("linear_bf16(Tensor x, Tensor packed_weight, Tensor? bias, str attr, "
                            "str? algorithm, Tensor? other) -> Tensor",
                            c10::AliasAnalysisKind::FROM_SCHEMA),
              &linear_bf16_op);
  library.def(torch::schema("pack_int8_panels(Tensor weight) -> Tensor",
                            c10::AliasAnalysisKind::FROM_SCHEMA),
              &pack_int8_panels);
  library.def(torch::schema("linear_int8(Tensor x, Tensor panels, Tensor scales, Tensor sums, "
                            "Tensor? bias, Tensor? smooth, int out_features, str attr=\"none\", "
                            "str? algorithm=None, Tensor? other=None) -> Tensor",
                            c10::AliasAnalysisKind::FROM_SCHEMA),
              &linear_int8_op);
  library.def(torch::schema("attention(Tensor query, Tensor key, Tensor value, Tensor? attn_mask, "
                            "float? scale) -> Tensor",
                            c10::AliasAnalysisKind::FROM_SCHEMA),
              &small_attention);
  library.def(
      torch::schema("self_attention(Tensor qkv, int[] head_shape, int q_start, int k_start, "
                    "int v_start, int width, Tensor? attn_mask, float? scale, "
                    "int[] out_shape) -> Tensor",
                    c10::AliasAnalysisKind::FROM_SCHEMA),
      &small_self_attention);
  library.def(torch::schema("layer_norm(Tensor input, Tensor weight, Tensor bias, float eps) -> "
                            "Tensor",
                            c10::AliasAnalysisKind::FROM_SCHEMA),
              &small_layer_norm);
}

}  // namespace
}  // namespace tsrunner::detail
