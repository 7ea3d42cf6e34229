// tsrunner::Generator on a tiny GPT-2 generation export: greedy and beam-search tokens equal HF
// generate's (recorded by tests/data/make_fixtures.py), seeded sampling independent of batch
// company, streaming, cancellation and parameter checks.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <future>
#include <string>
#include <thread>
#include <vector>

#include "test_paths.h"
#include "tsrunner/errors.h"
#include "tsrunner/generator.h"
#include "tsrunner/runner.h"

namespace {

using tsrunner::GenerationChunk;
using tsrunner::GenerationParams;
using tsrunner::GenerationResult;
using tsrunner::Generator;
using tsrunner::Runner;
using tsrunner::testing::fixture;
using tsrunner::testing::read_bytes;

struct Expected {
  std::vector<std::vector<int64_t>> prompts;
  std::vector<std::vector<int64_t>> greedy;
  std::vector<std::vector<int64_t>> beam3;  // num_beams 3, length_penalty 1.5
  int64_t max_new_tokens = 0;
};

Expected expected() {
  const auto root = nlohmann::json::parse(read_bytes(fixture("tiny_gpt2_gen_expected.json")));
  return {root["prompts"].get<std::vector<std::vector<int64_t>>>(),
          root["greedy"].get<std::vector<std::vector<int64_t>>>(),
          root["beam3"].get<std::vector<std::vector<int64_t>>>(),
          root["max_new_tokens"].get<int64_t>()};
}

const Runner& runner() {
  static const Runner loaded(fixture("tiny_gpt2_gen.pt"), [] {
    tsrunner::RunnerOptions options;
    options.threads = 1;
    return options;
  }());
  return loaded;
}

TEST(Generator, GreedyEqualsHuggingFaceGenerate) {
  const Expected want = expected();
  GenerationParams params;
  params.max_new_tokens = want.max_new_tokens;
  for (const int64_t max_batch : {8, 1}) {  // one batch, then one row: sequences take turns
    const Generator generator(runner(), {max_batch});
    const std::vector<GenerationResult> got = generator.generate_ids(want.prompts, params);
    ASSERT_EQ(got.size(), want.greedy.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].token_ids, want.greedy[i]) << "prompt " << i << ", max_batch " << max_batch;
      EXPECT_EQ(got[i].prompt_tokens, static_cast<int64_t>(want.prompts[i].size()));
    }
  }
}

TEST(Generator, SeededSamplingIgnoresBatchCompany) {
  const Expected want = expected();
  const Generator generator(runner(), {2});
  GenerationParams params;
  params.max_new_tokens = 10;
  params.temperature = 1.5;
  params.top_k = 0;
  params.seed = 11;
  params.ignore_eos = true;
  const auto alone = generator.generate_ids({want.prompts[0]}, params)[0].token_ids;
  const auto crowd =
      generator.generate_ids({want.prompts[1], want.prompts[2], want.prompts[0]}, params);
  EXPECT_EQ(crowd[2].token_ids, alone);  // joined after a row was freed
  EXPECT_EQ(alone.size(), 10u);
}

TEST(Generator, StreamedChunksMakeTheText) {
  const Generator generator(runner());
  GenerationParams params;
  params.max_new_tokens = 12;
  params.temperature = 0.9;
  params.seed = 2;
  std::vector<std::string> streamed(2);
  std::vector<std::string> reasons(2);
  const auto results = generator.generate({"The module provides", "Return a new"}, params,
                                          [&](const GenerationChunk& chunk) {
                                            streamed[chunk.index] += chunk.text;
                                            if (chunk.finished)
                                              reasons[chunk.index] = chunk.finish_reason;
                                            return true;
                                          });
  for (size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(streamed[i], results[i].text);
    EXPECT_EQ(reasons[i], results[i].finish_reason);
  }
}

TEST(Generator, CallbackCancelsOneSequence) {
  const Generator generator(runner());
  GenerationParams params;
  params.max_new_tokens = 20;
  params.ignore_eos = true;
  const auto results = generator.generate_ids(
      {{5, 6, 7}, {8, 9}}, params, [](const GenerationChunk& chunk) { return chunk.index != 0; });
  EXPECT_EQ(results[0].finish_reason, "cancelled");
  EXPECT_EQ(results[0].token_ids.size(), 1u);
  EXPECT_EQ(results[1].token_ids.size(), 20u);
  EXPECT_EQ(results[1].finish_reason, "length");
}

TEST(Generator, RefusesBadRequests) {
  const Generator generator(runner());
  GenerationParams params;
  params.top_p = 1.5;
  EXPECT_THROW(generator.check({5, 6}, params), tsrunner::InvalidInput);
  EXPECT_THROW(generator.check({}, {}), tsrunner::InvalidInput);
  EXPECT_THROW(generator.check({5, 100000}, {}), tsrunner::InvalidInput);
  EXPECT_THROW(generator.check(std::vector<int64_t>(64, 5), {}), tsrunner::InvalidInput);
  try {
    GenerationParams hot;
    hot.temperature = -0.5;
    generator.check({5}, hot);
    FAIL() << "temperature -0.5 was accepted";
  } catch (const tsrunner::InvalidInput& error) {
    EXPECT_NE(std::string(error.what()).find("temperature must be >= 0"), std::string::npos);
  }
}

TEST(Generator, SubmittedRequestsJoinTheRunningBatch) {
  const Expected want = expected();
  const Generator generator(runner(), {2});
  GenerationParams greedy;
  greedy.max_new_tokens = want.max_new_tokens;
  GenerationParams sampled;
  sampled.max_new_tokens = 16;
  sampled.temperature = 1.2;
  sampled.seed = 5;
  sampled.ignore_eos = true;
  const auto alone = generator.generate_ids({want.prompts[1]}, sampled)[0].token_ids;
  // A long request runs; the others arrive from other threads while it decodes, and one waits
  // for a free row (max_batch 2).
  std::promise<void> started;
  bool signalled = false;
  auto long_one = generator.submit(want.prompts[1], sampled, [&](const GenerationChunk&) {
    if (!signalled) started.set_value();
    signalled = true;
    return true;
  });
  started.get_future().wait();
  std::vector<std::future<GenerationResult>> others(want.prompts.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < want.prompts.size(); ++i) {
    threads.emplace_back([&, i] { others[i] = generator.submit(want.prompts[i], greedy); });
  }
  for (std::thread& thread : threads) thread.join();
  for (size_t i = 0; i < want.prompts.size(); ++i) {
    EXPECT_EQ(others[i].get().token_ids, want.greedy[i]) << "prompt " << i;
  }
  EXPECT_EQ(long_one.get().token_ids, alone);
  GenerationParams bad;
  bad.top_k = -1;
  EXPECT_THROW(generator.submit({5}, bad), tsrunner::InvalidInput);
}

TEST(Generator, BeamSearchEqualsHuggingFaceGenerate) {
  const Expected want = expected();
  const Generator generator(runner(), {2});
  GenerationParams beams;
  beams.max_new_tokens = want.max_new_tokens;
  beams.num_beams = 3;
  beams.length_penalty = 1.5;
  const auto got = generator.generate_ids(want.prompts, beams);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].token_ids, want.beam3[i]) << "prompt " << i;
  }
  // Submitted beside greedy requests: the beams run alone between two steps of the batch.
  GenerationParams greedy;
  greedy.max_new_tokens = want.max_new_tokens;
  std::vector<std::future<GenerationResult>> plain, beamed;
  for (const auto& prompt : want.prompts) {
    plain.push_back(generator.submit(prompt, greedy));
    beamed.push_back(generator.submit(prompt, beams));
  }
  for (size_t i = 0; i < want.prompts.size(); ++i) {
    EXPECT_EQ(plain[i].get().token_ids, want.greedy[i]) << "prompt " << i;
    EXPECT_EQ(beamed[i].get().token_ids, want.beam3[i]) << "prompt " << i;
  }
}

TEST(Generator, RefusesAnExportThatDoesNotGenerate) {
  const Runner bert(fixture("tiny_bert.pt"));
  EXPECT_THROW(Generator{bert}, tsrunner::InvalidInput);
}

}  // namespace
