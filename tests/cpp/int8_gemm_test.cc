// tsrunner's int8 GEMM (cpp/src/kernels/int8_gemm.h) against an exact integer reference, on
// ragged shapes (partial tiles, partial and odd panel counts, K not a multiple of 4) and 1, 2
// and 7 threads, on every body this CPU runs (the 512-bit tiles, the 256-bit ones in EVEX or
// VEX encoding, plain C++): `make sanitize` runs these under ASan and UBSan. The VEX
// (AVX-VNNI) build of the 256-bit tiles runs only on AVX-VNNI CPUs; `make check-avx-vnni`
// checks its encoding where none is at hand (docs/testing.md).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "kernels/cpu_isa.h"
#include "kernels/int8_gemm.h"
#include "ops/linear_int8.h"

namespace {

using tsrunner::detail::CpuIsa;
using tsrunner::detail::Int8Kernel;
using Shape = std::tuple<int64_t, int64_t, int64_t>;  // rows, N, K

// Rows around the tile heights (4 and 8), N with a partial last panel of more and of fewer than
// 8 columns (the 256-bit tiles' two halves), K not a multiple of 4.
const std::vector<Shape> kShapes = {{1, 16, 384}, {5, 20, 7},     {13, 50, 33}, {12, 32, 4},
                                    {97, 40, 64}, {200, 17, 385}, {1, 1, 1},    {300, 48, 96},
                                    {3, 8, 5},    {6, 24, 12},    {11, 9, 130}};

// Every body this CPU runs; with TSR_TEST_INT8_KERNEL set, the one it names and plain C++ (for
// an emulator with AVX-VNNI and no AVX-512, where the host's /proc/cpuinfo still claims it).
std::vector<Int8Kernel> kernels() {
  const char* hook = std::getenv("TSR_TEST_INT8_KERNEL");
  if (hook != nullptr && *hook != '\0') {
    return {Int8Kernel::kGeneric, tsrunner::detail::int8_kernel()};
  }
  std::vector<Int8Kernel> runnable;
  for (Int8Kernel kernel : {Int8Kernel::kGeneric, Int8Kernel::kAvxVnni, Int8Kernel::kAvx512Vnni256,
                            Int8Kernel::kAvx512Vnni}) {
    if (tsrunner::detail::int8_kernel_runs_here(kernel)) runnable.push_back(kernel);
  }
  return runnable;
}

struct Problem {
  at::Tensor q;       // [rows, padded K] u8, the padding 0
  at::Tensor weight;  // [N, K] int8
  at::Tensor panels;  // packed
  at::Tensor sums;    // [N] int32
  at::Tensor zeros;   // [rows] int32 zero points
};

Problem make_problem(int64_t rows, int64_t n, int64_t k) {
  at::manual_seed(rows * 1000 + n * 10 + k);
  Problem p;
  const int64_t padded = tsrunner::detail::int8_k_groups(k) * 4;
  p.q = at::zeros({rows, padded}, at::kByte);
  p.q.narrow(1, 0, k).copy_(at::randint(0, 256, {rows, k}, at::kInt));
  p.weight = at::randint(-127, 128, {n, k}, at::kInt).to(at::kChar);
  p.panels = tsrunner::detail::pack_int8_panels(p.weight);
  p.sums = p.weight.to(at::kInt).sum(1, false, at::kInt);
  p.zeros = at::randint(0, 256, {rows}, at::kInt);
  return p;
}

TEST(Int8Gemm, MatchesAnExactIntegerReference) {
  const int threads_before = at::get_num_threads();
  for (const auto& [rows, n, k] : kShapes) {
    const Problem p = make_problem(rows, n, k);
    // Exact in int64, then the same int32 -> float conversion the kernel makes; unit scales and
    // no bias leave nothing else to round.
    const at::Tensor sums64 =
        at::matmul(p.q.narrow(1, 0, k).to(at::kLong), p.weight.to(at::kLong).t());
    const at::Tensor want = (sums64 - p.zeros.to(at::kLong).unsqueeze(1) * p.sums.to(at::kLong))
                                .to(at::kInt)
                                .to(at::kFloat);
    const at::Tensor ones_rows = at::ones({rows});
    const at::Tensor ones_columns = at::ones({n});
    for (Int8Kernel kernel : kernels()) {
      for (int threads : {1, 2, 7}) {
        at::set_num_threads(threads);
        at::Tensor out = at::full({rows, n}, 1e30);  // anything left unwritten shows
        tsrunner::detail::int8_gemm(p.q.data_ptr<uint8_t>(), rows, k, p.panels.data_ptr<int8_t>(),
                                    n, ones_rows.data_ptr<float>(), p.zeros.data_ptr<int32_t>(),
                                    ones_columns.data_ptr<float>(), p.sums.data_ptr<int32_t>(),
                                    nullptr, nullptr, out.data_ptr<float>(), {}, kernel);
        EXPECT_TRUE(at::equal(out, want))
            << "rows " << rows << " N " << n << " K " << k << " threads " << threads << " on "
            << tsrunner::detail::int8_kernel_name(kernel) << " max diff "
            << (out - want).abs().max().item<float>();
      }
    }
  }
  at::set_num_threads(threads_before);
}

TEST(Int8Gemm, AppliesScalesBiasAndResidualAndFinishesEachBlockOnce) {
  // Row chunks (many rows, one thread) and column blocks (few rows, several threads): `finish`
  // must see every output element exactly once, after it was written. Each epilogue (bias and
  // residual, bias alone, residual alone, neither) on every body, and every body gives the same
  // bits: exact sums, then the same float operations in the same order.
  for (const auto& [rows, n, k, threads] : std::vector<std::tuple<int64_t, int64_t, int64_t, int>>{
           {29, 40, 70, 1}, {29, 40, 70, 2}, {300, 50, 33, 2}, {7, 200, 64, 7}, {6, 21, 19, 2}}) {
    const Problem p = make_problem(rows, n, k);
    const at::Tensor row_scales = at::rand({rows}) + 0.1;
    const at::Tensor column_scales = at::rand({n}) + 0.1;
    const at::Tensor bias = at::randn({n});
    const at::Tensor residual = at::randn({rows, n});
    const at::Tensor sums =
        at::matmul(p.q.narrow(1, 0, k).to(at::kDouble), p.weight.to(at::kDouble).t()) -
        p.zeros.to(at::kDouble).unsqueeze(1) * p.sums.to(at::kDouble);
    const at::Tensor scaled =
        sums * row_scales.to(at::kDouble).unsqueeze(1) * column_scales.to(at::kDouble);
    const int threads_before = at::get_num_threads();
    at::set_num_threads(threads);
    for (const auto& [with_bias, with_residual] : std::vector<std::pair<bool, bool>>{
             {true, true}, {true, false}, {false, true}, {false, false}}) {
      at::Tensor want = scaled;
      if (with_bias) want = want + bias.to(at::kDouble);
      if (with_residual) want = want + residual.to(at::kDouble);
      std::vector<at::Tensor> results;
      for (Int8Kernel kernel : kernels()) {
        at::Tensor out = at::empty({rows, n});
        std::vector<int32_t> seen(static_cast<size_t>(rows * n), 0);
        std::vector<float> finished(static_cast<size_t>(rows * n));
        const tsrunner::detail::Int8GemmFinish finish = [&](int64_t row, int64_t row_end,
                                                            int64_t column, int64_t column_end) {
          ASSERT_TRUE(0 <= row && row < row_end && row_end <= rows);
          ASSERT_TRUE(0 <= column && column < column_end && column_end <= n);
          for (int64_t r = row; r < row_end; ++r) {
            for (int64_t c = column; c < column_end; ++c) {
              seen[static_cast<size_t>(r * n + c)] += 1;  // blocks never overlap: no race
              finished[static_cast<size_t>(r * n + c)] = out.data_ptr<float>()[r * n + c];
            }
          }
        };
        tsrunner::detail::int8_gemm(p.q.data_ptr<uint8_t>(), rows, k, p.panels.data_ptr<int8_t>(),
                                    n, row_scales.data_ptr<float>(), p.zeros.data_ptr<int32_t>(),
                                    column_scales.data_ptr<float>(), p.sums.data_ptr<int32_t>(),
                                    with_bias ? bias.data_ptr<float>() : nullptr,
                                    with_residual ? residual.data_ptr<float>() : nullptr,
                                    out.data_ptr<float>(), finish, kernel);
        const std::string where = "rows " + std::to_string(rows) + " threads " +
                                  std::to_string(threads) + " bias " + std::to_string(with_bias) +
                                  " residual " + std::to_string(with_residual) + " on " +
                                  tsrunner::detail::int8_kernel_name(kernel);
        const double error =
            ((out.to(at::kDouble) - want).abs() / (want.abs() + 1)).max().item<double>();
        EXPECT_LT(error, 1e-6) << where;
        EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), rows * n) << where;
        const at::Tensor at_finish = at::from_blob(finished.data(), {rows, n});
        EXPECT_TRUE(at::equal(at_finish, out))
            << "finish ran before its block was written, " << where;
        if (!results.empty()) {
          EXPECT_TRUE(at::equal(out, results.front()))
              << "not the plain C++ body's bits, " << where;
        }
        results.push_back(out);
      }
    }
    at::set_num_threads(threads_before);
  }
}

TEST(Int8Gemm, KernelHookPicksTheBodyAndRefusesWhatThisCpuLacks) {
  const char* before = std::getenv("TSR_TEST_INT8_KERNEL");
  const std::string saved = before != nullptr ? before : "";
  const auto restore = [&] {
    if (before != nullptr) {
      setenv("TSR_TEST_INT8_KERNEL", saved.c_str(), 1);
    } else {
      unsetenv("TSR_TEST_INT8_KERNEL");
    }
  };
  setenv("TSR_TEST_INT8_KERNEL", "generic", 1);
  EXPECT_EQ(tsrunner::detail::int8_kernel(), Int8Kernel::kGeneric);
  setenv("TSR_TEST_INT8_KERNEL", "avx_vnni", 1);
  if (tsrunner::detail::cpu_has_avx_vnni()) {
    EXPECT_EQ(tsrunner::detail::int8_kernel(), Int8Kernel::kAvxVnni);
  } else if (tsrunner::detail::int8_kernel_runs_here(Int8Kernel::kAvx512Vnni256)) {
    EXPECT_EQ(tsrunner::detail::int8_kernel(), Int8Kernel::kAvx512Vnni256);
  } else {
    EXPECT_THROW(tsrunner::detail::int8_kernel(), std::invalid_argument);
  }
  setenv("TSR_TEST_INT8_KERNEL", "avx512_vnni", 1);
  if (tsrunner::detail::cpu_has(CpuIsa::kAvx512Vnni)) {
    EXPECT_EQ(tsrunner::detail::int8_kernel(), Int8Kernel::kAvx512Vnni);
  } else {
    EXPECT_THROW(tsrunner::detail::int8_kernel(), std::invalid_argument);
  }
  setenv("TSR_TEST_INT8_KERNEL", "sse2", 1);
  try {
    tsrunner::detail::int8_kernel();
    ADD_FAILURE() << "TSR_TEST_INT8_KERNEL=sse2 was accepted";
  } catch (const std::invalid_argument& error) {
    EXPECT_EQ(std::string(error.what()),
              "TSR_TEST_INT8_KERNEL must be avx512_vnni, avx_vnni or generic, not sse2");
  }
  unsetenv("TSR_TEST_INT8_KERNEL");
  // Without the hook: the widest body this CPU has.
  const Int8Kernel best = tsrunner::detail::int8_kernel();
  if (tsrunner::detail::cpu_has(CpuIsa::kAvx512Vnni)) {
    EXPECT_EQ(best, Int8Kernel::kAvx512Vnni);
  } else if (tsrunner::detail::cpu_has_avx_vnni()) {
    EXPECT_EQ(best, Int8Kernel::kAvxVnni);
  } else {
    EXPECT_EQ(best, Int8Kernel::kGeneric);
  }
  restore();
}

TEST(Int8Quantize, RowsRoundTripWithinHalfAStepOnEveryPath) {
  for (const auto& [rows, n, k] : kShapes) {
    (void)n;
    at::manual_seed(rows + k);
    const at::Tensor x = at::randn({rows, k}) * 3 + 0.5;
    const at::Tensor smooth = at::rand({k}) + 0.5;
    const int64_t padded = tsrunner::detail::int8_k_groups(k) * 4;
    std::vector<at::Tensor> results;
    std::vector<CpuIsa> isas = {CpuIsa::kGeneric};
    for (CpuIsa isa : {CpuIsa::kAvx2, CpuIsa::kAvx512}) {
      if (tsrunner::detail::cpu_has(isa)) isas.push_back(isa);
    }
    for (CpuIsa isa : isas) {
      at::Tensor q = at::full({rows, padded}, 7, at::kByte);
      at::Tensor scales = at::empty({rows});
      at::Tensor zeros = at::empty({rows}, at::kInt);
      tsrunner::detail::quantize_rows_u8(x.data_ptr<float>(), rows, k, smooth.data_ptr<float>(),
                                         q.data_ptr<uint8_t>(), scales.data_ptr<float>(),
                                         zeros.data_ptr<int32_t>(), isa);
      const at::Tensor back =
          (q.narrow(1, 0, k).to(at::kFloat) - zeros.unsqueeze(1).to(at::kFloat)) *
          scales.unsqueeze(1);
      const at::Tensor error = (back - x * smooth).abs() - scales.unsqueeze(1) * 0.5001;
      EXPECT_LE(error.max().item<float>(), 1e-5) << "rows " << rows << " K " << k;
      EXPECT_EQ(q.narrow(1, k, padded - k).sum().item<int64_t>(), 0) << "padding must be 0";
      results.push_back(q);
    }
    for (size_t i = 1; i < results.size(); ++i) {
      EXPECT_TRUE(at::equal(results[0], results[i]))
          << tsrunner::detail::isa_name(isas[i]) << " rounds differently, K " << k;
    }
  }
}

}  // namespace
