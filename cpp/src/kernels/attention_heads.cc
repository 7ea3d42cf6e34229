#include "kernels/attention_heads.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kernels/cpu_isa.h"

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

// out[c, c + 16 x Vectors) of one query row: the weights p[j] (already exp'd) times v's rows.
template <int Vectors>
__attribute__((target("avx512f"))) void one_row_sum(const float* p, const float* v, int64_t v_row,
                                                    int64_t s, float inverse, float* out) {
  __m512 acc[Vectors];
  for (auto& column : acc) column = _mm512_setzero_ps();
  for (int64_t j = 0; j < s; ++j) {
    const __m512 weight = _mm512_set1_ps(p[j]);
    for (int c = 0; c < Vectors; ++c) {
      acc[c] = _mm512_fmadd_ps(weight, _mm512_loadu_ps(v + j * v_row + 16 * c), acc[c]);
    }
  }
  for (int c = 0; c < Vectors; ++c) {
    _mm512_storeu_ps(out + 16 * c, _mm512_mul_ps(acc[c], _mm512_set1_ps(inverse)));
  }
}

// One query row (a decode step's token) over many keys: each score a dot product along the
// head, the keys read once in order. attend_avx512 transposes 16 query rows to share each key
// load, which for one row computes 15 rows for nothing.
__attribute__((target("avx512f"))) bool attend_one_row_avx512(const Head& h, Scratch& scratch) {
  scratch.values.resize(static_cast<size_t>(h.s + kLanes));
  float* p = scratch.values.data();
  float max = kMinusInfinity;
  for (int64_t j = 0; j < h.s; ++j) {
    const float* k = h.k + j * h.k_row;
    __m512 acc = _mm512_mul_ps(_mm512_loadu_ps(h.q), _mm512_loadu_ps(k));
    for (int64_t c = 16; c < h.d; c += 16) {
      acc = _mm512_fmadd_ps(_mm512_loadu_ps(h.q + c), _mm512_loadu_ps(k + c), acc);
    }
    const float score = _mm512_reduce_add_ps(acc) * h.scale + h.mask_bias(0, j);
    p[j] = score;
    max = std::max(max, score);
  }
  if (!finite_max(max)) return false;
  const __m512 top = _mm512_set1_ps(max);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < h.s; j += kLanes) {
    const auto lanes = static_cast<__mmask16>(
        h.s - j >= kLanes ? 0xFFFFu : (1u << static_cast<unsigned>(h.s - j)) - 1u);
    const __m512 e = _mm512_maskz_mov_ps(
        lanes, exp_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(lanes, p + j), top)));
    _mm512_mask_storeu_ps(p + j, lanes, e);
    sum = _mm512_add_ps(sum, e);
  }
  const float inverse = 1.0f / _mm512_reduce_add_ps(sum);
  for (int64_t column = 0; column < h.dv; column += 64) {
    const int64_t left = h.dv - column;
    const float* v = h.v + column;
    float* out = h.out + column;
    if (left >= 64) {
      one_row_sum<4>(p, v, h.v_row, h.s, inverse, out);
    } else if (left == 48) {
      one_row_sum<3>(p, v, h.v_row, h.s, inverse, out);
    } else if (left == 32) {
      one_row_sum<2>(p, v, h.v_row, h.s, inverse, out);
    } else {
      one_row_sum<1>(p, v, h.v_row, h.s, inverse, out);
    }
  }
  return true;
}

#endif

bool avx512_kernel(int64_t d, int64_t dv) {
#if defined(__x86_64__)
  return cpu_has(CpuIsa::kAvx512) && d % 16 == 0 && dv % 16 == 0;
#else
  (void)d, (void)dv;
  return false;
#endif
}

}  // namespace

bool attend_heads(int64_t batch, int64_t heads, int64_t t, int64_t s, int64_t d, int64_t dv,
                  AttentionOperand q, AttentionOperand k, AttentionOperand v,
                  const at::Tensor& full_mask, float scale, float* out,
                  AttentionOperand out_strides) {
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
      const bool attended = !vectorized ? attend_generic(head, scratch)
                            : t == 1    ? attend_one_row_avx512(head, scratch)
                                        : attend_avx512(head, scratch);
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

}  // namespace tsrunner::detail
