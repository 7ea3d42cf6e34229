#include "small_attention.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
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
}

}  // namespace

int64_t small_attention_max_keys() { return 128; }

bool attention_fusion_enabled() {
  const char* value = std::getenv("TSR_FUSED_ATTENTION");
  return value == nullptr || std::string(value) != "0";
}

at::Tensor small_attention(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                           const std::optional<at::Tensor>& mask_or_none,
                           std::optional<double> scale) {
  const auto library_kernel = [&] {
    return at::scaled_dot_product_attention(query, key, value, mask_or_none, 0.0, false, scale,
                                            false);
  };
  const std::optional<at::Tensor> mask =
      mask_or_none && mask_or_none->defined() ? mask_or_none : std::nullopt;
  const bool floats = query.scalar_type() == at::kFloat && key.scalar_type() == at::kFloat &&
                      value.scalar_type() == at::kFloat;
  const bool cpu = query.device().is_cpu() && key.device().is_cpu() && value.device().is_cpu() &&
                   (!mask || mask->device().is_cpu());
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
  const bool any_grad = query.requires_grad() || key.requires_grad() || value.requires_grad() ||
                        (mask && mask->requires_grad());
  if (!same_heads || !rows_contiguous || (any_grad && at::GradMode::is_enabled()) || batch == 0 ||
      heads == 0 || t == 0 || d == 0 || s == 0 || dv == 0 || s > small_attention_max_keys()) {
    return library_kernel();
  }
  at::Tensor full_mask;
  if (mask) {
    const bool mask_type = mask->scalar_type() == at::kBool || mask->scalar_type() == at::kFloat;
    if (!mask_type || !at::is_expandable_to(mask->sizes(), {batch, heads, t, s})) {
      return library_kernel();
    }
    full_mask = mask->expand({batch, heads, t, s});
  }
  // [B, T, H, Dv] memory seen as [B, H, T, Dv]: LibTorch's own layout for this result.
  at::Tensor result = at::empty({batch, t, heads, dv}, query.options()).permute({0, 2, 1, 3});
  const float scale_value =
      static_cast<float>(scale ? *scale : 1.0 / std::sqrt(static_cast<double>(d)));
  const bool vectorized = avx512_kernel(d, dv);
  const int64_t work = t * s * (d + dv);
  const int64_t grain = std::max<int64_t>(1, kParallelWork / std::max<int64_t>(1, work));
  std::atomic<bool> every_row_attends{true};
  const float* q = query.data_ptr<float>();
  const float* k = key.data_ptr<float>();
  const float* v = value.data_ptr<float>();
  float* out = result.data_ptr<float>();
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
      head.q = q + b * query.stride(0) + h * query.stride(1);
      head.q_row = query.stride(2);
      head.k = k + b * key.stride(0) + h * key.stride(1);
      head.k_row = key.stride(2);
      head.v = v + b * value.stride(0) + h * value.stride(1);
      head.v_row = value.stride(2);
      head.out = out + b * result.stride(0) + h * result.stride(1);
      head.out_row = result.stride(2);
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
      head.scale = scale_value;
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
  return every_row_attends ? result : library_kernel();
}

int fuse_attention(torch::jit::Graph& graph) {
  if (!attention_fusion_enabled()) return 0;
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

}  // namespace tsrunner::detail
