// tsrunner's own GEMM kernels called directly on ragged shapes, so that `make sanitize` runs
// them under ASan and UBSan: every partial tile, partial panel and odd K at the edges of its
// buffers. The numbers are checked against a float64 sum here too; the exactness tests with
// tight bounds are tests/python/test_bf16_compute.py and test_cpu_fast_path.py.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <tuple>
#include <vector>

#include "kernels/bf16_gemm.h"
#include "kernels/small_gemm.h"
#include "tsrunner/cpu_info.h"

namespace {

using Shape = std::tuple<int64_t, int64_t, int64_t>;  // rows, N, K

// x . weight^T + bias + residual in float64.
at::Tensor reference(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                     const at::Tensor& residual) {
  return at::matmul(x.to(at::kDouble), weight.to(at::kDouble).t()) + bias.to(at::kDouble) +
         residual.to(at::kDouble);
}

// Runs `gemm` on 1 and 2 threads (both ways of sharing the work) and checks each result.
template <typename Gemm>
void check_shapes(const std::vector<Shape>& shapes, bool round_to_bf16, Gemm gemm) {
  const int threads_before = at::get_num_threads();
  for (const auto& [rows, n, k] : shapes) {
    at::manual_seed(rows * 1000 + n * 10 + k);
    const at::Tensor x = at::randn({rows, k});
    const at::Tensor weight = at::randn({n, k}) / 10;
    const at::Tensor bias = at::randn({n});
    const at::Tensor residual = at::randn({rows, n});
    const at::Tensor want =
        round_to_bf16 ? reference(x.to(at::kBFloat16), weight.to(at::kBFloat16), bias, residual)
                      : reference(x, weight, bias, residual);
    for (int threads : {1, 2}) {
      at::set_num_threads(threads);
      at::Tensor out = at::full({rows, n}, 1e30);  // anything left unwritten shows
      gemm(x, weight, bias, residual, out);
      const double error = (out.to(at::kDouble) - want).abs().max().item<double>();
      EXPECT_LT(error, 1e-4) << "rows " << rows << " N " << n << " K " << k << " threads "
                             << threads;
    }
  }
  at::set_num_threads(threads_before);
}

TEST(Bf16Gemm, SumsBf16RoundedOperandsOnRaggedShapes) {
  if (!tsrunner::cpu_info().avx512_bf16) GTEST_SKIP() << "the bf16 kernel needs AVX512_BF16";
  // 1 / 12 / 13 / 72 / 150 rows: a lone row, one full tile, a tile and a row, one 72-row
  // block, several blocks and a partial one; N 16 / 20 / 50 / 48: one panel, a wide tile with
  // a partial second panel, an odd panel count; K odd and even.
  const std::vector<Shape> shapes = {{1, 16, 384}, {12, 20, 33},  {13, 50, 7},
                                     {72, 48, 64}, {150, 20, 33}, {200, 50, 384}};
  check_shapes(shapes, true,
               [](const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                  const at::Tensor& residual, at::Tensor& out) {
                 const at::Tensor panels = tsrunner::detail::pack_bf16_panels(weight);
                 tsrunner::detail::bf16_gemm(x.data_ptr<float>(), x.size(0), x.size(1),
                                             panels.data_ptr<at::BFloat16>(), weight.size(0),
                                             bias.data_ptr<float>(), residual.data_ptr<float>(),
                                             out.data_ptr<float>());
               });
}

TEST(SmallRowGemm, SumsOnRaggedShapes) {
  if (!tsrunner::cpu_info().avx512) GTEST_SKIP() << "the small-row kernel needs AVX-512";
  const std::vector<Shape> shapes = {
      {1, 16, 384}, {5, 20, 7}, {16, 50, 33}, {17, 1, 384}, {48, 40, 64}};
  check_shapes(shapes, false,
               [](const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                  const at::Tensor& residual, at::Tensor& out) {
                 const at::Tensor panels = tsrunner::detail::pack_panels(weight);
                 tsrunner::detail::small_gemm(x.data_ptr<float>(), x.size(0), x.size(1),
                                              panels.data_ptr<float>(), weight.size(0),
                                              bias.data_ptr<float>(), residual.data_ptr<float>(),
                                              out.data_ptr<float>());
               });
}

}  // namespace
