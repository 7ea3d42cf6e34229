#include "tsrunner/runner.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <thread>

#include "test_paths.h"
#include "tsrunner/errors.h"
#include "tsrunner/version.h"

namespace {

using tsrunner::InvalidInput;
using tsrunner::LoadError;
using tsrunner::Runner;
using tsrunner::TensorMap;
using tsrunner::testing::fixture;

at::Tensor random_ids(int64_t batch, int64_t sequence, uint64_t seed) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randint(1000, 30000, {batch, sequence}, generator, at::kLong);
}

class RunnerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { runner_ = new Runner(fixture("tiny_bert.pt")); }
  static void TearDownTestSuite() {
    delete runner_;
    runner_ = nullptr;
  }
  static Runner* runner_;
};
Runner* RunnerTest::runner_ = nullptr;

template <typename Call>
std::string invalid_input_message(Call call) {
  try {
    call();
  } catch (const InvalidInput& error) {
    return error.what();
  }
  return "(no InvalidInput thrown)";
}

TEST_F(RunnerTest, ReadsTheManifest) {
  const auto& manifest = runner_->manifest();
  EXPECT_EQ(manifest.task, "feature-extraction");
  ASSERT_EQ(manifest.inputs.size(), 3u);
  EXPECT_EQ(manifest.outputs[0].name, "last_hidden_state");
  EXPECT_EQ(manifest.shape_contract.max_sequence, 64);
}

TEST_F(RunnerTest, RunsNamedInputsToNamedOutputs) {
  const at::Tensor ids = random_ids(3, 11, 1);
  const TensorMap outputs = runner_->run({{"input_ids", ids}});
  ASSERT_EQ(outputs.size(), 2u);
  EXPECT_EQ(outputs.at("last_hidden_state").sizes(), (std::vector<int64_t>{3, 11, 32}));
  EXPECT_EQ(outputs.at("pooler_output").sizes(), (std::vector<int64_t>{3, 32}));
  EXPECT_EQ(outputs.at("pooler_output").scalar_type(), at::kFloat);
  EXPECT_FALSE(outputs.at("last_hidden_state").requires_grad());
}

TEST_F(RunnerTest, FillsDefaultsFromTheManifest) {
  const at::Tensor ids = random_ids(2, 7, 2);
  const TensorMap implicit = runner_->run({{"input_ids", ids}});
  const TensorMap explicit_inputs = runner_->run({{"input_ids", ids},
                                                  {"attention_mask", at::ones_like(ids)},
                                                  {"token_type_ids", at::zeros_like(ids)}});
  for (const auto& [name, tensor] : implicit) {
    EXPECT_TRUE(at::equal(tensor, explicit_inputs.at(name))) << name;
  }
}

TEST_F(RunnerTest, PaddingIsMaskedOut) {
  // The real tokens of a padded row give the same result as the row alone.
  const at::Tensor alone = random_ids(1, 5, 3);
  at::Tensor padded = at::zeros({1, 9}, at::kLong);
  padded.narrow(1, 0, 5).copy_(alone);
  at::Tensor mask = at::zeros({1, 9}, at::kLong);
  mask.narrow(1, 0, 5).fill_(1);
  const at::Tensor a = runner_->run({{"input_ids", alone}}).at("last_hidden_state");
  const at::Tensor b =
      runner_->run({{"input_ids", padded}, {"attention_mask", mask}}).at("last_hidden_state");
  EXPECT_TRUE(at::allclose(a, b.narrow(1, 0, 5), 0.0, 1e-5));
}

TEST_F(RunnerTest, BadInputsAreInvalidInputAndTheRunnerStaysUsable) {
  const at::Tensor ids = random_ids(2, 6, 4);
  EXPECT_EQ(invalid_input_message([&] { runner_->run({{"input_ids", ids}, {"ids", ids}}); }),
            "unknown input \"ids\"; this model takes: input_ids, attention_mask (optional), "
            "token_type_ids (optional)");
  EXPECT_EQ(invalid_input_message([&] {
              runner_->run({{"attention_mask", ids}});
            }).rfind("missing input \"input_ids\"", 0),
            0u);
  EXPECT_EQ(invalid_input_message([&] { runner_->run({{"input_ids", ids.to(at::kFloat)}}); }),
            "input \"input_ids\" has dtype float32, expected int64");
  EXPECT_EQ(invalid_input_message([&] { runner_->run({{"input_ids", ids.unsqueeze(0)}}); }),
            "input \"input_ids\" has 3 dimensions, expected 2");
  EXPECT_EQ(invalid_input_message([&] {
              runner_->run({{"input_ids", ids}, {"token_type_ids", at::zeros({3, 6}, at::kLong)}});
            }),
            "input \"token_type_ids\" has batch size 3 but \"input_ids\" has 2");
  at::Tensor bad = ids.clone();
  bad[1][4] = -7;
  EXPECT_EQ(invalid_input_message([&] { runner_->run({{"input_ids", bad}}); }),
            "input \"input_ids\" has value -7 at [1][4], outside the valid range [0, 30522)");
  EXPECT_EQ(invalid_input_message([&] { runner_->run({{"input_ids", random_ids(1, 80, 5)}}); }),
            "input has 80 tokens; this export was validated up to 64: re-export with "
            "--max-length 80");
  EXPECT_EQ(invalid_input_message([&] { runner_->run({{"input_ids", random_ids(0, 4, 6)}}); }),
            "input \"input_ids\" has an empty batch dimension");
  EXPECT_EQ(runner_->run({{"input_ids", ids}}).at("pooler_output").size(0), 2);
}

TEST_F(RunnerTest, ConcurrentCallsGiveTheSingleThreadedResults) {
  constexpr int kThreads = 4;
  constexpr int kCalls = 20;
  std::vector<at::Tensor> inputs;
  std::vector<at::Tensor> expected;
  for (int i = 0; i < kCalls; ++i) {
    inputs.push_back(random_ids(1 + i % 3, 1 + (i * 7) % 40, 100 + i));
    expected.push_back(runner_->run({{"input_ids", inputs.back()}}).at("last_hidden_state"));
  }
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        const int k = (i + t * 5) % kCalls;
        const at::Tensor got = runner_->run({{"input_ids", inputs[k]}}).at("last_hidden_state");
        if (!at::equal(got, expected[k])) ++mismatches[t];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

TEST(RunnerLoad, MissingFileIsALoadError) {
  EXPECT_THROW(
      {
        try {
          Runner runner("/nonexistent/model.pt");
        } catch (const LoadError& error) {
          EXPECT_STREQ(error.what(), "model file not found: /nonexistent/model.pt");
          throw;
        }
      },
      LoadError);
}

TEST(RunnerLoad, NonArchiveIsALoadError) {
  const std::string path = ::testing::TempDir() + "/not_a_model.pt";
  std::ofstream(path) << "plain text, not a zip archive";
  try {
    Runner runner(path);
    FAIL() << "expected LoadError";
  } catch (const LoadError& error) {
    EXPECT_NE(std::string(error.what()).find("is not a TorchScript archive"), std::string::npos)
        << error.what();
  }
  std::remove(path.c_str());
}

TEST(RunnerLoad, BadOptionsAreInvalidInput) {
  tsrunner::RunnerOptions options;
  options.threads = -2;
  EXPECT_THROW(Runner(fixture("tiny_bert.pt"), options), InvalidInput);
  options.threads = 1;
  options.device = "abacus";
  EXPECT_THROW(Runner(fixture("tiny_bert.pt"), options), InvalidInput);
}

TEST(RunnerLoad, RunnerIsMovable) {
  Runner first(fixture("tiny_bert.pt"));
  Runner second(std::move(first));
  EXPECT_EQ(second.manifest().task, "feature-extraction");
  EXPECT_EQ(second.run({{"input_ids", random_ids(1, 3, 9)}}).size(), 2u);
}

TEST(Version, MatchesTheBuild) {
  EXPECT_STREQ(tsrunner::torch_version(), "2.13.0");
  EXPECT_FALSE(std::string(tsrunner::version()).empty());
}

}  // namespace
