#include "small_attention.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "tsrunner/cpu_info.h"

namespace tsrunner::detail {
namespace {

constexpr float kMinusInfinity = -std::numeric_limits<float>::infinity();
// Multiply-adds per parallel chunk: below that one thread does all heads, a fork/join of
// LibTorch's OpenMP pool costing more than it saves.
constexpr int64_t kParallelWork = int64_t{1} << 18;

// One (batch row, head): its rows as pointers plus row strides, in elements; the last
// dimension of q, k, v and out is contiguous. The mask is boolean (true: attend), float
// (added to the scaled scores) or absent, with element strides (broadcast dimensions are 0).
struct Head {
  const float* q;
  int64_t q_row;
  const float* k;
  int64_t k_row;
  const float* v;
  int64_t v_row;
  float* out;
  int64_t out_row;
  const bool* mask_bool;
  const float* mask_float;
  int64_t mask_row;
  int64_t mask_column;
  int64_t t, s, d, dv;
  float scale;

  bool masked() const { return mask_bool != nullptr || mask_float != nullptr; }
  float mask_bias(int64_t i, int64_t j) const {
    const int64_t at = i * mask_row + j * mask_column;
    if (mask_bool != nullptr) return mask_bool[at] ? 0.0f : kMinusInfinity;
    return mask_float != nullptr ? mask_float[at] : 0.0f;
  }
};

// Per-thread working memory, kept between calls. `bias` is the mask of the (batch row, head)
// at `bias_for`, as float and transposed; reset for every parallel chunk.
struct Scratch {
  std::vector<float> values;
  std::vector<float> bias;
  const void* bias_for = nullptr;
};

bool finite_max(float value) {
  return value > kMinusInfinity && value < std::numeric_limits<float>::infinity();
}

// Any head size, any CPU. Returns false when a query row has no key to attend to (or a score is
// not finite): LibTorch's operator then decides what such a row gets.
bool attend_generic(const Head& h, Scratch& scratch) {
  scratch.values.resize(static_cast<size_t>(h.s));
  float* row = scratch.values.data();
  for (int64_t i = 0; i < h.t; ++i) {
    const float* q = h.q + i * h.q_row;
    float max = kMinusInfinity;
    for (int64_t j = 0; j < h.s; ++j) {
      const float* k = h.k + j * h.k_row;
      float dot = 0.0f;
      for (int64_t c = 0; c < h.d; ++c) dot += q[c] * k[c];
      row[j] = dot * h.scale + h.mask_bias(i, j);
      max = std::max(max, row[j]);
    }
    if (!finite_max(max)) return false;
    float sum = 0.0f;
    for (int64_t j = 0; j < h.s; ++j) {
      row[j] = std::exp(row[j] - max);
      sum += row[j];
    }
    const float inverse = 1.0f / sum;
    float* out = h.out + i * h.out_row;
    for (int64_t c = 0; c < h.dv; ++c) {
      float acc = 0.0f;
      for (int64_t j = 0; j < h.s; ++j) acc += row[j] * h.v[j * h.v_row + c];
      out[c] = acc * inverse;
    }
  }
  return true;
}

#if defined(__x86_64__)

constexpr int kLanes = 16;  // query rows per block: one register holds a key's 16 scores
constexpr int kRows = 4;    // output rows per step of the weighted sum

// e^x for x <= 0 (scores minus their row's maximum), Cephes' expf polynomial: ~1 ulp; 0 below
// -87.3 (masked keys are -inf).
__attribute__((target("avx512f"))) __m512 exp_nonpositive(__m512 x) {
  const __mmask16 kept = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.33654f), _CMP_GE_OQ);
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.33654f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  x = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  x = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), x);
  __m512 y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201e-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
  return _mm512_maskz_mov_ps(kept, _mm512_scalef_ps(y, n));
}

// out[r] = inverse[r] * sum_j p[j][r] v[j] for kRows query rows (the first `rows` stored), over
// `Vectors` x 16 output columns; p holds kLanes rows' weights per key.
template <int Vectors>
__attribute__((target("avx512f"))) void weighted_sum(const float* p, int rows, const float* v,
                                                     int64_t v_row, int64_t s, const float* inverse,
                                                     float* out, int64_t out_row) {
  __m512 acc[kRows][Vectors];
  for (auto& row : acc) {
    for (auto& column : row) column = _mm512_setzero_ps();
  }
  for (int64_t j = 0; j < s; ++j) {
    __m512 values[Vectors];
    for (int c = 0; c < Vectors; ++c) values[c] = _mm512_loadu_ps(v + j * v_row + 16 * c);
    for (int r = 0; r < kRows; ++r) {
      const __m512 weight = _mm512_set1_ps(p[j * kLanes + r]);
      for (int c = 0; c < Vectors; ++c) acc[r][c] = _mm512_fmadd_ps(weight, values[c], acc[r][c]);
    }
  }
  for (int r = 0; r < rows; ++r) {
    const __m512 scale = _mm512_set1_ps(inverse[r]);
    for (int c = 0; c < Vectors; ++c) {
      _mm512_storeu_ps(out + r * out_row + 16 * c, _mm512_mul_ps(acc[r][c], scale));
    }
  }
}

// Head sizes that are multiples of 16 on AVX-512. Scores are kept key-major for a block of 16
// query rows, [S][16]: one register per key, so the softmax over keys is elementwise across
// registers (no horizontal reductions), and each key's row of k is read once per block.
__attribute__((target("avx512f"))) bool attend_avx512(const Head& h, Scratch& scratch) {
  const int64_t t_padded = (h.t + kLanes - 1) / kLanes * kLanes;
  scratch.values.resize(static_cast<size_t>(h.d * kLanes + h.s * kLanes));
  float* q_t = scratch.values.data();  // [D][16]: the block's query rows, transposed
  float* p = q_t + h.d * kLanes;       // [S][16]: scores, then weights
  const float* bias_t = nullptr;       // [S][T rounded up to 16]: the mask, transposed
  if (h.masked()) {
    const void* mask = h.mask_bool != nullptr ? static_cast<const void*>(h.mask_bool)
                                              : static_cast<const void*>(h.mask_float);
    if (scratch.bias_for != mask) {  // the heads of a batch row usually share one mask
      scratch.bias.resize(static_cast<size_t>(h.s * t_padded));
      for (int64_t j = 0; j < h.s; ++j) {
        float* to = scratch.bias.data() + j * t_padded;
        for (int64_t i = 0; i < h.t; ++i) to[i] = h.mask_bias(i, j);
        for (int64_t i = h.t; i < t_padded; ++i) to[i] = 0.0f;
      }
      scratch.bias_for = mask;
    }
    bias_t = scratch.bias.data();
  }
  const __m512 scale = _mm512_set1_ps(h.scale);
  alignas(64) float inverse[kLanes];
  for (int64_t first = 0; first < h.t; first += kLanes) {
    const int rows = static_cast<int>(std::min<int64_t>(kLanes, h.t - first));
    for (int r = 0; r < kLanes; ++r) {  // rows past the end repeat the last: computed, not stored
      const float* from = h.q + std::min<int64_t>(first + r, h.t - 1) * h.q_row;
      for (int64_t c = 0; c < h.d; ++c) q_t[c * kLanes + r] = from[c];
    }
    for (int64_t j0 = 0; j0 < h.s; j0 += 4) {  // 4 keys at a time: 4 independent sums
      const int keys = static_cast<int>(std::min<int64_t>(4, h.s - j0));
      const float* k[4];
      for (int u = 0; u < 4; ++u) k[u] = h.k + std::min<int64_t>(j0 + u, h.s - 1) * h.k_row;
      __m512 acc[4];
      for (auto& value : acc) value = _mm512_setzero_ps();
      for (int64_t c = 0; c < h.d; ++c) {
        const __m512 queries = _mm512_loadu_ps(q_t + c * kLanes);
        for (int u = 0; u < 4; ++u) {
          acc[u] = _mm512_fmadd_ps(queries, _mm512_set1_ps(k[u][c]), acc[u]);
        }
      }
      for (int u = 0; u < keys; ++u) {
        __m512 score = _mm512_mul_ps(acc[u], scale);
        if (bias_t != nullptr) {
          score = _mm512_add_ps(score, _mm512_loadu_ps(bias_t + (j0 + u) * t_padded + first));
        }
        _mm512_storeu_ps(p + (j0 + u) * kLanes, score);
      }
    }
    __m512 max = _mm512_set1_ps(kMinusInfinity);
    for (int64_t j = 0; j < h.s; ++j) max = _mm512_max_ps(max, _mm512_loadu_ps(p + j * kLanes));
    // A row with no key to attend to (or a non-finite score): LibTorch's operator decides.
    const auto valid = static_cast<__mmask16>((1u << rows) - 1u);
    const __mmask16 finite =
        _mm512_cmp_ps_mask(max, _mm512_set1_ps(kMinusInfinity), _CMP_GT_OQ) &
        _mm512_cmp_ps_mask(max, _mm512_set1_ps(std::numeric_limits<float>::infinity()), _CMP_LT_OQ);
    if ((finite & valid) != valid) return false;
    __m512 sum = _mm512_setzero_ps();
    for (int64_t j = 0; j < h.s; ++j) {
      const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(p + j * kLanes), max));
      _mm512_storeu_ps(p + j * kLanes, e);
      sum = _mm512_add_ps(sum, e);
    }
    _mm512_store_ps(inverse, _mm512_div_ps(_mm512_set1_ps(1.0f), sum));
    for (int r0 = 0; r0 < rows; r0 += kRows) {
      const int n = std::min(kRows, rows - r0);
      float* out = h.out + (first + r0) * h.out_row;
      for (int64_t column = 0; column < h.dv; column += 64) {
        const int64_t left = h.dv - column;
        const float* v = h.v + column;
        const float* w = p + r0;
        if (left >= 64) {
          weighted_sum<4>(w, n, v, h.v_row, h.s, inverse + r0, out + column, h.out_row);
        } else if (left == 48) {
          weighted_sum<3>(w, n, v, h.v_row, h.s, inverse + r0, out + column, h.out_row);
        } else if (left == 32) {
          weighted_sum<2>(w, n, v, h.v_row, h.s, inverse + r0, out + column, h.out_row);
        } else {
          weighted_sum<1>(w, n, v, h.v_row, h.s, inverse + r0, out + column, h.out_row);
        }
      }
    }
  }
  return true;
}

#endif

bool avx512_kernel(int64_t d, int64_t dv) {
#if defined(__x86_64__)
  return cpu_info().avx512 && d % 16 == 0 && dv % 16 == 0;
#else
  (void)d, (void)dv;
  return false;
#endif
}

at::Tensor attention_op(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                        const std::optional<at::Tensor>& mask, std::optional<double> scale) {
  return small_attention(query, key, value, mask, scale);
}

TORCH_LIBRARY_FRAGMENT(tsrunner, library) {
  library.def(torch::schema("attention(Tensor query, Tensor key, Tensor value, Tensor? attn_mask, "
                            "float? scale) -> Tensor",
                            c10::AliasAnalysisKind::FROM_SCHEMA),
              &attention_op);
  library.def(
      torch::schema("self_attention(Tensor qkv, int[] head_shape, int q_start, int k_start, "
                    "int v_start, int width, Tensor? attn_mask, float? scale, "
                    "int[] out_shape) -> Tensor",
                    c10::AliasAnalysisKind::FROM_SCHEMA),
      &small_self_attention);
}

}  // namespace

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

// One [B, H, rows, D] operand: its data and element strides (the last one is 1).
struct Operand {
  const float* data;
  int64_t batch_stride, head_stride, row_stride;
};

// Every (batch row, head) of q [B, H, T, D], k [B, H, S, D], v [B, H, S, Dv] into `out`
// ([B, H, T, Dv] at the given strides). False when some query row has no key to attend to.
bool attend_heads(int64_t batch, int64_t heads, int64_t t, int64_t s, int64_t d, int64_t dv,
                  Operand q, Operand k, Operand v, const at::Tensor& full_mask, float scale,
                  float* out, Operand out_strides) {
  const bool vectorized = avx512_kernel(d, dv);
  const int64_t work = t * s * (d + dv);
  const int64_t grain = std::max<int64_t>(1, kParallelWork / std::max<int64_t>(1, work));
  std::atomic<bool> every_row_attends{true};
  const bool* mask_bool = full_mask.defined() && full_mask.scalar_type() == at::kBool
                              ? full_mask.data_ptr<bool>()
                              : nullptr;
  const float* mask_float = full_mask.defined() && full_mask.scalar_type() == at::kFloat
                                ? full_mask.data_ptr<float>()
                                : nullptr;
  at::parallel_for(0, batch * heads, grain, [&](int64_t first, int64_t last) {
    thread_local Scratch scratch;
    scratch.bias_for = nullptr;  // a new call's mask may sit where the last one's did
    for (int64_t task = first; task < last; ++task) {
      const int64_t b = task / heads;
      const int64_t h = task % heads;
      Head head{};
      head.q = q.data + b * q.batch_stride + h * q.head_stride;
      head.q_row = q.row_stride;
      head.k = k.data + b * k.batch_stride + h * k.head_stride;
      head.k_row = k.row_stride;
      head.v = v.data + b * v.batch_stride + h * v.head_stride;
      head.v_row = v.row_stride;
      head.out = out + b * out_strides.batch_stride + h * out_strides.head_stride;
      head.out_row = out_strides.row_stride;
      if (full_mask.defined()) {
        const int64_t offset = b * full_mask.stride(0) + h * full_mask.stride(1);
        head.mask_bool = mask_bool != nullptr ? mask_bool + offset : nullptr;
        head.mask_float = mask_float != nullptr ? mask_float + offset : nullptr;
        head.mask_row = full_mask.stride(2);
        head.mask_column = full_mask.stride(3);
      }
      head.t = t;
      head.s = s;
      head.d = d;
      head.dv = dv;
      head.scale = scale;
#if defined(__x86_64__)
      const bool attended =
          vectorized ? attend_avx512(head, scratch) : attend_generic(head, scratch);
#else
      const bool attended = attend_generic(head, scratch);
#endif
      if (!attended) {
        every_row_attends = false;
        return;
      }
    }
  });
  return every_row_attends;
}

Operand operand(const at::Tensor& tensor) {
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
      s == 0 || dv == 0 || s > small_attention_max_keys()) {
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
  const auto part = [&](int64_t start) { return Operand{data + start, t * columns, d, columns}; };
  const bool attended = attend_heads(
      batch, heads, t, t, d, d, part(q_start), part(k_start), part(v_start), *full_mask,
      scale_or_default(scale, d), result.data_ptr<float>(), Operand{nullptr, t * width, d, width});
  return attended ? result : as_graph();
}

int fuse_attention(torch::jit::Graph& graph) {
  using torch::jit::Node;
  std::vector<Node*> found;
  for (Node* node : graph.nodes()) {  // top-level only, as pack_linears: traced graphs
    if (node->kind() == c10::aten::scaled_dot_product_attention) found.push_back(node);
  }
  const auto constant = [](torch::jit::Value* input) { return torch::jit::toIValue(input); };
  int fused = 0;
  for (Node* sdpa : found) {
    if (sdpa->inputs().size() != 8 || sdpa->outputs().size() != 1) continue;
    const std::optional<c10::IValue> dropout = constant(sdpa->input(4));
    const std::optional<c10::IValue> causal = constant(sdpa->input(5));
    const std::optional<c10::IValue> scale = constant(sdpa->input(6));
    const std::optional<c10::IValue> grouped = constant(sdpa->input(7));
    if (!dropout || !dropout->isDouble() || dropout->toDouble() != 0.0) continue;
    if (!causal || !causal->isBool() || causal->toBool()) continue;
    if (!scale || !(scale->isNone() || scale->isDouble())) continue;
    if (!grouped || !grouped->isBool() || grouped->toBool()) continue;
    torch::jit::WithInsertPoint before(sdpa);
    Node* attention = graph.create(
        c10::Symbol::fromQualString("tsrunner::attention"),
        {sdpa->input(0), sdpa->input(1), sdpa->input(2), sdpa->input(3), sdpa->input(6)}, 1);
    graph.insertNode(attention);
    attention->output()->setType(sdpa->output()->type());
    attention->output()->copyMetadata(sdpa->output());
    sdpa->output()->replaceAllUsesWith(attention->output());
    sdpa->destroy();
    ++fused;
  }
  return fused;
}

namespace {

using torch::jit::Node;
using torch::jit::Value;

std::optional<int64_t> constant_int(Value* value) {
  const std::optional<c10::IValue> constant = torch::jit::toIValue(value);
  if (!constant || !constant->isInt()) return std::nullopt;
  return constant->toInt();
}

// The single node of `kind` that uses `value`, as its input `offset`, if that is its only use.
Node* sole_user(Value* value, c10::Symbol kind, size_t offset = 0) {
  if (value->uses().size() != 1) return nullptr;
  const torch::jit::Use& use = value->uses()[0];
  return use.user->kind() == kind && use.offset == offset ? use.user : nullptr;
}

// q, k or v as the merged Q/K/V GEMM gives them: transpose(reshape(slice(qkv, -1, start,
// start + width, 1), shape), 1, 2), the slice and the reshape used only there.
struct HeadView {
  Value* qkv;
  Value* shape;
  int64_t start;
  int64_t width;
  Node* transpose;
};

std::optional<HeadView> head_view(Value* heads) {
  Node* transpose = heads->node();
  if (transpose->kind() != c10::aten::transpose || transpose->inputs().size() != 3 ||
      constant_int(transpose->input(1)) != 1 || constant_int(transpose->input(2)) != 2) {
    return std::nullopt;
  }
  Node* reshape = transpose->input(0)->node();
  if (reshape->kind() != c10::aten::reshape || reshape->output()->uses().size() != 1) {
    return std::nullopt;
  }
  Node* slice = reshape->input(0)->node();
  if (slice->kind() != c10::aten::slice || slice->inputs().size() != 5 ||
      slice->output()->uses().size() != 1) {
    return std::nullopt;
  }
  const std::optional<int64_t> start = constant_int(slice->input(2));
  const std::optional<int64_t> end = constant_int(slice->input(3));
  if (constant_int(slice->input(1)) != -1 || constant_int(slice->input(4)) != 1 || !start || !end ||
      *start < 0 || *end <= *start) {
    return std::nullopt;
  }
  return HeadView{slice->input(0), reshape->input(1), *start, *end - *start, transpose};
}

// aten::size(of, dim) whose result only `list` reads.
bool size_read_by(Value* value, Value* of, int64_t dim, Node* list) {
  Node* size = value->node();
  if (size->kind() != c10::aten::size || size->inputs().size() != 2 || size->input(0) != of ||
      constant_int(size->input(1)) != dim) {
    return false;
  }
  for (const torch::jit::Use& use : size->output()->uses()) {
    if (use.user != list) return false;
  }
  return true;
}

// Every use of `value` is `allowed` or an aten::size read only by `list`.
bool other_uses_are_sizes_for(Value* value, Node* allowed, Node* list) {
  for (const torch::jit::Use& use : value->uses()) {
    if (use.user == allowed) continue;
    if (use.user->kind() != c10::aten::size) return false;
    for (const torch::jit::Use& size_use : use.user->output()->uses()) {
      if (size_use.user != list) return false;
    }
  }
  return true;
}

}  // namespace

int fuse_self_attention(torch::jit::Graph& graph) {
  std::vector<Node*> found;
  for (Node* node : graph.nodes()) {
    if (node->kind() == c10::Symbol::fromQualString("tsrunner::attention")) found.push_back(node);
  }
  int fused = 0;
  for (Node* attention : found) {
    const std::optional<HeadView> q = head_view(attention->input(0));
    const std::optional<HeadView> k = head_view(attention->input(1));
    const std::optional<HeadView> v = head_view(attention->input(2));
    if (!q || !k || !v || k->qkv != q->qkv || v->qkv != q->qkv || k->shape != q->shape ||
        v->shape != q->shape || k->width != q->width || v->width != q->width) {
      continue;
    }
    // The way back: reshape(attention, [size(attention, 0), -1, size(q, 2), size(v, 3)]),
    // transpose(1, 2), contiguous, reshape(out_shape), contiguous.
    Node* back = nullptr;
    for (const torch::jit::Use& use : attention->output()->uses()) {
      if (use.user->kind() == c10::aten::reshape && use.offset == 0 && back == nullptr) {
        back = use.user;
      } else if (use.user->kind() != c10::aten::size) {
        back = nullptr;
        break;
      }
    }
    if (back == nullptr) continue;
    Node* list = back->input(1)->node();
    if (list->kind() != c10::prim::ListConstruct || list->inputs().size() != 4 ||
        list->output()->uses().size() != 1 ||
        !size_read_by(list->input(0), attention->output(), 0, list) ||
        constant_int(list->input(1)) != -1 ||
        !size_read_by(list->input(2), q->transpose->output(), 2, list) ||
        !size_read_by(list->input(3), v->transpose->output(), 3, list) ||
        !other_uses_are_sizes_for(attention->output(), back, list) ||
        !other_uses_are_sizes_for(q->transpose->output(), attention, list) ||
        !other_uses_are_sizes_for(v->transpose->output(), attention, list) ||
        k->transpose->output()->uses().size() != 1) {
      continue;
    }
    Node* transpose = sole_user(back->output(), c10::aten::transpose);
    if (transpose == nullptr || constant_int(transpose->input(1)) != 1 ||
        constant_int(transpose->input(2)) != 2) {
      continue;
    }
    Node* contiguous = sole_user(transpose->output(), c10::aten::contiguous);
    Node* reshape = contiguous ? sole_user(contiguous->output(), c10::aten::reshape) : nullptr;
    Node* last = reshape ? sole_user(reshape->output(), c10::aten::contiguous) : nullptr;
    if (last == nullptr || constant_int(contiguous->input(1)) != 0 ||
        constant_int(last->input(1)) != 0) {
      continue;
    }
    torch::jit::WithInsertPoint before(last);
    Node* fused_node = graph.create(
        c10::Symbol::fromQualString("tsrunner::self_attention"),
        {q->qkv, q->shape, graph.insertConstant(q->start), graph.insertConstant(k->start),
         graph.insertConstant(v->start), graph.insertConstant(q->width), attention->input(3),
         attention->input(4), reshape->input(1)},
        1);
    graph.insertNode(fused_node);
    fused_node->output()->setType(last->output()->type());
    fused_node->output()->copyMetadata(last->output());
    last->output()->replaceAllUsesWith(fused_node->output());
    ++fused;
  }
  // The views, sizes and the attention node itself are now unused: side-effect free, dropped.
  if (fused > 0) torch::jit::EliminateDeadCode(graph.block());
  return fused;
}

}  // namespace tsrunner::detail
