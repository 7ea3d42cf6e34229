// One Runner shared by many threads, and memory that stays flat over thousands of calls.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "test_paths.h"
#include "tsrunner/runner.h"

namespace {

using tsrunner::Runner;
using tsrunner::TensorMap;
using tsrunner::testing::fixture;

struct Call {
  TensorMap inputs;
  TensorMap expected;
};

// Random shapes within the tiny BERT's contract (batch 1..4, sequence 1..32 of its 64), padded
// rows and token types included, so that every input path is exercised.
TensorMap random_inputs(std::mt19937& rng) {
  const int64_t batch = std::uniform_int_distribution<int64_t>(1, 4)(rng);
  const int64_t sequence = std::uniform_int_distribution<int64_t>(1, 32)(rng);
  auto generator = at::make_generator<at::CPUGeneratorImpl>(rng());
  at::Tensor ids = at::randint(1000, 30000, {batch, sequence}, generator, at::kLong);
  at::Tensor mask = at::ones({batch, sequence}, at::kLong);
  const int64_t real = std::uniform_int_distribution<int64_t>(1, sequence)(rng);
  mask[0].narrow(0, real, sequence - real).fill_(0);  // a padded row
  at::Tensor types = at::randint(0, 2, {batch, sequence}, generator, at::kLong);
  return {{"input_ids", ids}, {"attention_mask", mask}, {"token_type_ids", types}};
}

TEST(Concurrency, EightThreadsGiveTheSingleThreadedResults) {
  constexpr int kThreads = 8;
  constexpr int kCallsPerThread = 200;
  // One intra-op thread: eight callers on LibTorch's default pool would mostly measure
  // oversubscription on a small machine; the sharing being tested is the same.
  tsrunner::RunnerOptions options;
  options.threads = 1;
  const Runner runner(fixture("tiny_bert.pt"), options);
  std::mt19937 rng(7);
  std::vector<Call> calls(64);
  for (Call& call : calls) {
    call.inputs = random_inputs(rng);
    call.expected = runner.run(call.inputs);
  }
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        std::mt19937 pick(100 + t);
        for (int i = 0; i < kCallsPerThread; ++i) {
          const Call& call = calls[pick() % calls.size()];
          const TensorMap got = runner.run(call.inputs);
          for (const auto& [name, tensor] : call.expected) {
            if (!at::equal(got.at(name), tensor)) ++mismatches[t];
          }
        }
      } catch (const std::exception& error) {
        errors[t] = error.what();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(mismatches[t], 0) << "thread " << t;
    EXPECT_EQ(errors[t], "") << "thread " << t;
  }
}

// Resident memory of this process in KiB, from /proc/self/status.
int64_t resident_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

TEST(Memory, ResidentMemoryStaysFlatOverFiveThousandCalls) {
  const Runner runner(fixture("tiny_bert.pt"), [] {
    tsrunner::RunnerOptions options;
    options.threads = 1;
    return options;
  }());
  std::mt19937 rng(11);
  std::vector<TensorMap> inputs;
  for (int i = 0; i < 50; ++i) inputs.push_back(random_inputs(rng));
  int64_t at_1000 = 0;
  for (int call = 1; call <= 5000; ++call) {
    const TensorMap outputs = runner.run(inputs[call % inputs.size()]);
    ASSERT_EQ(outputs.size(), 2u);
    if (call == 1000) at_1000 = resident_kib();
  }
  const int64_t at_5000 = resident_kib();
  ASSERT_GT(at_1000, 0);
  std::cout << "VmRSS at call 1000: " << at_1000 << " KiB, at call 5000: " << at_5000 << " KiB\n";
  EXPECT_LE(at_5000 - at_1000, 32 * 1024) << "RSS " << at_1000 << " KiB -> " << at_5000 << " KiB";
}

}  // namespace
