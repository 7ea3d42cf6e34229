#include "ops/linear_int8.h"

#include <ATen/ATen.h>
#include <ATen/ThreadLocalState.h>
#include <ATen/record_function.h>

#include <optional>
#include <vector>

#include "kernels/int8_gemm.h"

namespace tsrunner::detail {

at::Tensor pack_int8_panels(const at::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 2 && weight.scalar_type() == at::kChar,
              "pack_int8_panels expects a 2-D int8 weight, got ", weight.scalar_type(), " ",
              weight.sizes());
  const int64_t n = weight.size(0);
  const int64_t k = weight.size(1);
  const int64_t blocks = int8_column_blocks(n);
  const int64_t groups = int8_k_groups(k);
  at::Tensor padded = at::zeros({blocks * 16, groups * 4}, weight.options());
  padded.narrow(0, 0, n).narrow(1, 0, k).copy_(weight);
  // [blocks, 16, groups, 4] -> [blocks, groups, 16, 4]
  return padded.view({blocks, 16, groups, 4}).transpose(1, 2).contiguous();
}

at::Tensor linear_int8_op(const at::Tensor& x, const at::Tensor& panels, const at::Tensor& scales,
                          const at::Tensor& sums, const std::optional<at::Tensor>& bias,
                          const std::optional<at::Tensor>& smooth, int64_t out_features,
                          c10::string_view attr, std::optional<c10::string_view> algorithm,
                          const std::optional<at::Tensor>& other) {
  TORCH_CHECK(x.scalar_type() == at::kFloat && x.dim() >= 1,
              "tsrunner::linear_int8: x must be float32 with at least one dimension");
  TORCH_CHECK(attr == "none" || attr == "gelu",
              "tsrunner::linear_int8: attr must be none or gelu, not ", attr);
  TORCH_CHECK(!other || attr == "none",
              "tsrunner::linear_int8 folds a GELU or a residual, not both");
  for (const at::Tensor* tensor : {&x, &panels, &scales, &sums, bias ? &*bias : nullptr,
                                   smooth ? &*smooth : nullptr, other ? &*other : nullptr}) {
    TORCH_CHECK(tensor == nullptr || tensor->device().is_cpu(),
                "tsrunner::linear_int8 runs on the CPU; got a tensor on ", tensor->device());
  }
  const int64_t k = x.size(-1);
  const int64_t n = out_features;
  // The op is public (torch.ops.tsrunner.linear_int8): what the kernel reads is checked.
  TORCH_CHECK(n > 0 && panels.dim() == 4 && panels.size(0) == int8_column_blocks(n) &&
                  panels.size(1) == int8_k_groups(k) && panels.size(2) == 16 &&
                  panels.size(3) == 4 && panels.scalar_type() == at::kChar &&
                  panels.is_contiguous(),
              "tsrunner::linear_int8: panels must be pack_int8_panels(weight) of a weight [N, K] "
              "= [",
              n, ", ", k, "], got ", panels.sizes());
  TORCH_CHECK(scales.numel() == n && scales.scalar_type() == at::kFloat && scales.is_contiguous(),
              "tsrunner::linear_int8: scales must hold ", n, " float32 values");
  TORCH_CHECK(sums.numel() == n && sums.scalar_type() == at::kInt && sums.is_contiguous(),
              "tsrunner::linear_int8: sums must hold ", n, " int32 values");
  TORCH_CHECK(!bias || (bias->numel() == n && bias->scalar_type() == at::kFloat),
              "tsrunner::linear_int8: bias must hold ", n, " float32 values");
  TORCH_CHECK(!smooth || (smooth->numel() == k && smooth->scalar_type() == at::kFloat),
              "tsrunner::linear_int8: smooth must hold ", k, " float32 values");
  std::vector<int64_t> output_shape(x.sizes().begin(), x.sizes().end());
  output_shape.back() = n;
  const int64_t rows = k > 0 ? x.numel() / k : 0;
  const bool other_fits = other && other->sizes() == c10::IntArrayRef(output_shape) &&
                          other->scalar_type() == at::kFloat;
  if (k == 0) {  // an empty sum: the bias alone, as aten::linear gives
    at::Tensor sum = at::zeros(output_shape, x.options());
    if (bias) sum.add_(*bias);
    if (attr == "gelu") sum = at::gelu(sum, algorithm.value_or("none"));
    return other ? sum.add(*other) : sum;
  }
  at::Tensor result = at::empty(output_shape, x.options());
  if (rows == 0) return other && !other_fits ? result.add(*other) : result;
  const at::Tensor input = x.contiguous();
  const at::Tensor smooth_values = smooth ? smooth->contiguous() : at::Tensor();
  const at::Tensor bias_values = bias ? bias->contiguous() : at::Tensor();
  at::Tensor q = at::empty({rows, int8_k_groups(k) * 4}, x.options().dtype(at::kByte));
  at::Tensor row_scales = at::empty({rows}, x.options());
  at::Tensor zero_points = at::empty({rows}, x.options().dtype(at::kInt));
  {
    // Named for profilers (benchmarks/int8_profile.py): the quantization's share of the op.
    RECORD_FUNCTION("tsrunner::quantize_rows_u8", std::vector<c10::IValue>());
    quantize_rows_u8(input.data_ptr<float>(), rows, k,
                     smooth_values.defined() ? smooth_values.data_ptr<float>() : nullptr,
                     q.data_ptr<uint8_t>(), row_scales.data_ptr<float>(),
                     zero_points.data_ptr<int32_t>());
  }
  const at::Tensor residual = other_fits ? other->contiguous() : at::Tensor();
  const at::Tensor matrix = result.view({rows, n});
  // GELU on each block as its thread finishes it, as tsrunner::linear does; OpenMP's threads
  // take over the caller's thread-local modes (inference mode) first.
  std::optional<at::ThreadLocalState> caller_state;
  if (attr == "gelu") caller_state.emplace();
  const auto gelu_block = [&](int64_t row, int64_t row_end, int64_t column, int64_t column_end) {
    const at::ThreadLocalStateGuard same_modes(*caller_state);
    at::Tensor block = matrix.narrow(0, row, row_end - row).narrow(1, column, column_end - column);
    at::gelu_(block, algorithm.value_or("none"));
  };
  int8_gemm(q.data_ptr<uint8_t>(), rows, k, panels.data_ptr<int8_t>(), n,
            row_scales.data_ptr<float>(), zero_points.data_ptr<int32_t>(), scales.data_ptr<float>(),
            sums.data_ptr<int32_t>(),
            bias_values.defined() ? bias_values.data_ptr<float>() : nullptr,
            residual.defined() ? residual.data_ptr<float>() : nullptr, result.data_ptr<float>(),
            attr == "gelu" ? Int8GemmFinish(gelu_block) : nullptr);
  return other && !other_fits ? result.add(*other) : result;
}

}  // namespace tsrunner::detail
