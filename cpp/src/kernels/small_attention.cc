#include "kernels/small_attention.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>

#include "kernels/attention_heads.h"

namespace tsrunner::detail {

int64_t small_attention_max_keys() { return 128; }

namespace {

// The mask as the kernel reads it: expanded to [B, H, T, S] (an undefined tensor when there is
// none); nullopt when the kernel cannot take it (another dtype, or it does not broadcast).
std::optional<at::Tensor> kernel_mask(const std::optional<at::Tensor>& mask, int64_t batch,
                                      int64_t heads, int64_t t, int64_t s) {
  if (!mask || !mask->defined()) return at::Tensor();
  const bool mask_type = mask->scalar_type() == at::kBool || mask->scalar_type() == at::kFloat;
  if (!mask_type || !mask->device().is_cpu() ||
      !at::is_expandable_to(mask->sizes(), {batch, heads, t, s})) {
    return std::nullopt;
  }
  return mask->expand({batch, heads, t, s});
}

AttentionOperand operand(const at::Tensor& tensor) {
  return {tensor.data_ptr<float>(), tensor.stride(0), tensor.stride(1), tensor.stride(2)};
}

float scale_or_default(std::optional<double> scale, int64_t d) {
  return static_cast<float>(scale ? *scale : 1.0 / std::sqrt(static_cast<double>(d)));
}

bool grad_needed(std::initializer_list<const at::Tensor*> tensors) {
  if (!at::GradMode::is_enabled()) return false;
  for (const at::Tensor* tensor : tensors) {
    if (tensor->defined() && tensor->requires_grad()) return true;
  }
  return false;
}

}  // namespace

at::Tensor small_attention(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                           const std::optional<at::Tensor>& mask, std::optional<double> scale) {
  const auto library_kernel = [&] {
    return at::scaled_dot_product_attention(query, key, value, mask, 0.0, false, scale, false);
  };
  const bool floats = query.scalar_type() == at::kFloat && key.scalar_type() == at::kFloat &&
                      value.scalar_type() == at::kFloat;
  const bool cpu = query.device().is_cpu() && key.device().is_cpu() && value.device().is_cpu();
  if (!floats || !cpu || query.dim() != 4 || key.dim() != 4 || value.dim() != 4) {
    return library_kernel();
  }
  const int64_t batch = query.size(0);
  const int64_t heads = query.size(1);
  const int64_t t = query.size(2);
  const int64_t d = query.size(3);
  const int64_t s = key.size(2);
  const int64_t dv = value.size(3);
  const bool same_heads = key.size(0) == batch && value.size(0) == batch && key.size(1) == heads &&
                          value.size(1) == heads && key.size(3) == d && value.size(2) == s;
  const bool rows_contiguous = query.stride(3) == 1 && key.stride(3) == 1 && value.stride(3) == 1;
  const at::Tensor no_tensor;
  const bool any_grad =
      grad_needed({&query, &key, &value, mask && mask->defined() ? &*mask : &no_tensor});
  if (!same_heads || !rows_contiguous || any_grad || batch == 0 || heads == 0 || t == 0 || d == 0 ||
      s == 0 || dv == 0 || (t > 1 && s > small_attention_max_keys())) {
    return library_kernel();
  }
  const std::optional<at::Tensor> full_mask = kernel_mask(mask, batch, heads, t, s);
  if (!full_mask) return library_kernel();
  // [B, T, H, Dv] memory seen as [B, H, T, Dv]: LibTorch's own layout for this result.
  at::Tensor result = at::empty({batch, t, heads, dv}, query.options()).permute({0, 2, 1, 3});
  const bool attended = attend_heads(batch, heads, t, s, d, dv, operand(query), operand(key),
                                     operand(value), *full_mask, scale_or_default(scale, d),
                                     result.data_ptr<float>(), operand(result));
  return attended ? result : library_kernel();
}

at::Tensor small_self_attention(const at::Tensor& qkv, c10::IntArrayRef head_shape, int64_t q_start,
                                int64_t k_start, int64_t v_start, int64_t width,
                                const std::optional<at::Tensor>& mask, std::optional<double> scale,
                                c10::IntArrayRef out_shape) {
  // What the graph did: three slices of the merged GEMM's output as [B, H, T, D] views, the
  // attention, and the result back to [B, T, H x D] (copies where LibTorch needs them).
  const auto as_graph = [&] {
    const auto heads_of = [&](int64_t start) {
      return qkv.slice(-1, start, start + width).reshape(head_shape).transpose(1, 2);
    };
    const at::Tensor query = heads_of(q_start);
    const at::Tensor value = heads_of(v_start);
    const at::Tensor attended = small_attention(query, heads_of(k_start), value, mask, scale);
    return attended.reshape({attended.size(0), -1, query.size(2), value.size(3)})
        .transpose(1, 2)
        .contiguous()
        .reshape(out_shape)
        .contiguous();
  };
  // The same, read in place and written straight in [B, T, H x D]: a contiguous [B, T, C]
  // output, the head shape [B, T, H or -1, D], the output shape [B, T, H x D or -1].
  if (qkv.dim() != 3 || !qkv.is_contiguous() || qkv.scalar_type() != at::kFloat ||
      !qkv.device().is_cpu() || head_shape.size() != 4 || out_shape.size() != 3) {
    return as_graph();
  }
  const int64_t batch = qkv.size(0);
  const int64_t t = qkv.size(1);
  const int64_t columns = qkv.size(2);
  const int64_t d = head_shape[3];
  if (d <= 0 || width <= 0 || width % d != 0 || head_shape[0] != batch || head_shape[1] != t) {
    return as_graph();
  }
  const int64_t heads = width / d;
  const bool shapes_fit = (head_shape[2] == heads || head_shape[2] == -1) &&
                          out_shape[0] == batch && out_shape[1] == t &&
                          (out_shape[2] == width || out_shape[2] == -1);
  const bool in_range = std::min({q_start, k_start, v_start}) >= 0 &&
                        std::max({q_start, k_start, v_start}) + width <= columns;
  const at::Tensor no_tensor;
  if (!shapes_fit || !in_range || batch == 0 || t == 0 || t > small_attention_max_keys() ||
      grad_needed({&qkv, mask && mask->defined() ? &*mask : &no_tensor})) {
    return as_graph();
  }
  const std::optional<at::Tensor> full_mask = kernel_mask(mask, batch, heads, t, t);
  if (!full_mask) return as_graph();
  at::Tensor result = at::empty({batch, t, width}, qkv.options());
  const float* data = qkv.data_ptr<float>();
  const auto part = [&](int64_t start) {
    return AttentionOperand{data + start, t * columns, d, columns};
  };
  const bool attended =
      attend_heads(batch, heads, t, t, d, d, part(q_start), part(k_start), part(v_start),
                   *full_mask, scale_or_default(scale, d), result.data_ptr<float>(),
                   AttentionOperand{nullptr, t * width, d, width});
  return attended ? result : as_graph();
}

}  // namespace tsrunner::detail
