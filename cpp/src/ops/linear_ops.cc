// The bodies of tsrunner's Linear ops (registered in register_ops.cc): which kernel runs a
// call is decided here per call from its shape; which op a graph calls, at load
// (rewrites/linear_fusion.cc).
#include "ops/linear_ops.h"

#include <ATen/ATen.h>
#include <ATen/ThreadLocalState.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <functional>
#include <optional>
#include <vector>

#include "kernels/bf16_gemm.h"
#include "kernels/cpu_isa.h"
#include "kernels/small_gemm.h"
#include "tsrunner/cpu_info.h"

namespace tsrunner::detail {

at::Tensor pack_linear_weight(const at::Tensor& weight) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("mkldnn::_reorder_linear_weight", "")
                             .typed<at::Tensor(const at::Tensor&, std::optional<int64_t>)>();
  return op.call(weight, std::nullopt);
}

namespace {

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

}  // namespace

// tsrunner::linear(x, packed_weight, panels, bias, attr, algorithm, other): a float32 Linear
// with a GELU (attr "gelu", `algorithm` its approximation) or a residual add (`other`) folded
// in. Few rows (M <= small_rows, the runner's small_gemm_rows) run on the small-row kernel over
// `panels` (given when the CPU has it); the rest on oneDNN's GEMM over `packed_weight`. The
// residual is added in the GEMM's epilogue when it has the output's exact shape and dtype, checked
// per call: a traced graph does not say whether `other` broadcasts, and at another shape it may;
// then the GEMM is followed by aten::add, as the graph did.
at::Tensor linear_op(const at::Tensor& x, const at::Tensor& packed_weight,
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
at::Tensor linear_bf16_op(const at::Tensor& x, const at::Tensor& packed_weight,
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
at::Tensor linear_bf16_panels_op(const at::Tensor& x, const at::Tensor& panels,
                                 int64_t out_features, const std::optional<at::Tensor>& bias,
                                 c10::string_view attr, std::optional<c10::string_view> algorithm,
                                 const std::optional<at::Tensor>& other) {
  TORCH_CHECK(attr == "none" || attr == "gelu",
              "tsrunner::linear_bf16_panels: attr must be none or gelu, not ", attr);
  TORCH_CHECK(!other || attr == "none",
              "tsrunner::linear_bf16_panels folds a GELU or a residual, not both");
  // Without the instruction the kernel would die of SIGILL (the test hook of cpu_isa() counts:
  // the refusal is testable on any CPU).
  TORCH_CHECK(cpu_has(CpuIsa::kAvx512Bf16),
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

}  // namespace tsrunner::detail
