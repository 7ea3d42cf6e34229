// What tsrunner::Runner::run costs over a bare torch::jit::Module::forward on the same archive,
// the same inputs and the same thread count, in one process. The two are timed in alternating
// blocks so that noise from other processes falls on both alike.
//
//   runner_overhead model.pt [--batch 1] [--seq 16] [--rounds 30] [--calls 20] [--threads 1]
//
// Prints one JSON object: median per-call milliseconds of each and the overhead in percent.
#include <c10/core/InferenceMode.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "tsrunner/tsrunner.h"

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

template <typename Call>
double block_ms_per_call(int calls, Call&& call) {
  const auto start = Clock::now();
  for (int i = 0; i < calls; ++i) call();
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count() / calls;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: runner_overhead model.pt [--batch B] [--seq S] [--rounds N] "
                 "[--calls N] [--threads N]\n");
    return 2;
  }
  const std::string path = argv[1];
  int64_t batch = 1, sequence = 16;
  int rounds = 30, calls = 20, threads = 1;
  for (int i = 2; i + 1 < argc; i += 2) {
    const int64_t value = std::stoll(argv[i + 1]);
    if (!std::strcmp(argv[i], "--batch"))
      batch = value;
    else if (!std::strcmp(argv[i], "--seq"))
      sequence = value;
    else if (!std::strcmp(argv[i], "--rounds"))
      rounds = static_cast<int>(value);
    else if (!std::strcmp(argv[i], "--calls"))
      calls = static_cast<int>(value);
    else if (!std::strcmp(argv[i], "--threads"))
      threads = static_cast<int>(value);
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }

  tsrunner::RunnerOptions options;
  options.threads = threads;
  const tsrunner::Runner runner(path, options);
  torch::jit::Module bare = torch::jit::load(path);
  bare.eval();

  const tsrunner::TensorMap inputs =
      tsrunner::make_example_inputs(runner.manifest(), batch, sequence);
  std::vector<c10::IValue> positional;
  for (const tsrunner::TensorSpec& spec : runner.manifest().inputs) {
    positional.emplace_back(inputs.at(spec.name));
  }
  auto bare_call = [&] {
    c10::InferenceMode guard;
    (void)bare.forward(positional);
  };
  auto runner_call = [&] { (void)runner.run(inputs); };

  // Both paths pay their profiling runs before timing starts.
  for (int i = 0; i < 5; ++i) {
    bare_call();
    runner_call();
  }
  std::vector<double> bare_ms, runner_ms;
  for (int round = 0; round < rounds; ++round) {
    if (round % 2 == 0) {
      bare_ms.push_back(block_ms_per_call(calls, bare_call));
      runner_ms.push_back(block_ms_per_call(calls, runner_call));
    } else {
      runner_ms.push_back(block_ms_per_call(calls, runner_call));
      bare_ms.push_back(block_ms_per_call(calls, bare_call));
    }
  }
  const double bare_median = median(bare_ms), runner_median = median(runner_ms);
  std::printf(
      "{\"batch\": %lld, \"sequence\": %lld, \"threads\": %d, \"rounds\": %d, \"calls\": %d, "
      "\"bare_forward_ms\": %.4f, \"runner_run_ms\": %.4f, \"overhead_percent\": %.2f}\n",
      static_cast<long long>(batch), static_cast<long long>(sequence), threads, rounds, calls,
      bare_median, runner_median, 100.0 * (runner_median / bare_median - 1.0));
  return 0;
}
