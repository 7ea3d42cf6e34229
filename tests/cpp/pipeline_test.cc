// Pipeline batching: concurrent batches answer exactly as serial ones, and a failing batch
// surfaces in the caller.
#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "test_paths.h"
#include "tsrunner/errors.h"
#include "tsrunner/pipeline.h"

namespace {

using tsrunner::Encoding;
using tsrunner::Pipeline;
using tsrunner::Prediction;
using tsrunner::Runner;
using tsrunner::Tokenizer;
using tsrunner::testing::fixture;

// Texts of many lengths, so batches differ in shape and finish out of order.
std::vector<std::string> mixed_texts() {
  std::vector<std::string> texts;
  for (int i = 0; i < 60; ++i) {
    std::string text = "sentence " + std::to_string(i);
    for (int word = 0; word < (i * 7) % 23; ++word) text += " word" + std::to_string(word);
    texts.push_back(text);
  }
  return texts;
}

Runner single_threaded_runner() {
  tsrunner::RunnerOptions options;
  options.threads = 1;
  return Runner(fixture("tiny_bert.pt"), options);
}

TEST(Pipeline, ConcurrentBatchesGiveTheSerialAnswersInInputOrder) {
  const Runner runner = single_threaded_runner();
  const Pipeline pipeline(runner, Tokenizer::from_file(fixture("tiny_bert.pt")));
  const std::vector<std::string> texts = mixed_texts();
  const std::vector<Prediction> serial = pipeline.predict(texts, {}, 3, 1);
  for (size_t concurrent : {2, 4, 100}) {
    const std::vector<Prediction> parallel = pipeline.predict(texts, {}, 3, concurrent);
    ASSERT_EQ(parallel.size(), texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
      // One intra-op thread everywhere: the same kernels on the same shapes, bit for bit.
      EXPECT_EQ(parallel[i].embedding, serial[i].embedding) << "text " << i << ", " << concurrent;
    }
  }
}

TEST(Pipeline, AFailingBatchOfManyReachesTheCaller) {
  const Runner runner = single_threaded_runner();
  const Pipeline pipeline(runner, Tokenizer::from_file(fixture("tiny_bert.pt")));
  std::vector<std::vector<Encoding>> inputs;
  for (const std::string& text : mixed_texts()) inputs.push_back(pipeline.encode(text));
  inputs[37][0].ids[1] = 1'000'000;  // outside the vocabulary: Runner::run refuses this batch
  EXPECT_THROW(
      {
        try {
          (void)pipeline.predict_encodings(inputs, {}, {}, 4, 3);
        } catch (const tsrunner::InvalidInput& error) {
          EXPECT_NE(std::string(error.what()).find("1000000"), std::string::npos) << error.what();
          throw;
        }
      },
      tsrunner::InvalidInput);
  inputs[37][0].ids[1] = 1000;
  EXPECT_EQ(pipeline.predict_encodings(inputs, {}, {}, 4, 3).size(), inputs.size());
}

TEST(Pipeline, ConcurrentCallersShareOnePoolAndOnlyTheFailingCallThrows) {
  const Runner runner = single_threaded_runner();
  auto pool = std::make_shared<tsrunner::ThreadPool>();
  const Pipeline pipeline(runner, Tokenizer::from_file(fixture("tiny_bert.pt")), {}, pool);
  const std::vector<std::string> texts = mixed_texts();
  const std::vector<Prediction> serial = pipeline.predict(texts, {}, 3, 1);
  std::vector<std::vector<Encoding>> inputs;
  for (const std::string& text : texts) inputs.push_back(pipeline.encode(text));
  std::vector<std::vector<Encoding>> bad_inputs = inputs;
  bad_inputs[11][0].ids[1] = 1'000'000;  // outside the vocabulary: that batch fails

  constexpr size_t kCallers = 8, kFailing = 3;
  std::vector<std::vector<Prediction>> answers(kCallers);
  std::vector<std::string> errors(kCallers);
  std::vector<std::thread> callers;
  for (size_t c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      try {
        answers[c] = pipeline.predict_encodings(c == kFailing ? bad_inputs : inputs, {}, {}, 3,
                                                /*concurrent_batches=*/3);
      } catch (const tsrunner::InvalidInput& error) {
        errors[c] = error.what();
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  for (size_t c = 0; c < kCallers; ++c) {
    if (c == kFailing) {
      EXPECT_NE(errors[c].find("1000000"), std::string::npos) << errors[c];
      continue;
    }
    ASSERT_EQ(errors[c], "");
    ASSERT_EQ(answers[c].size(), texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
      EXPECT_EQ(answers[c][i].embedding, serial[i].embedding) << "caller " << c << ", text " << i;
    }
  }
  // Workers are started once (concurrent_batches - 1 of them: the caller runs batches too)
  // and reused by every later call, whatever the number of callers.
  EXPECT_EQ(pool->workers(), 2u);
  (void)pipeline.predict(texts, {}, 3, 3);
  EXPECT_EQ(pool->workers(), 2u);
}

TEST(Pipeline, AnInputWithoutEncodingsIsRefused) {
  const Runner runner = single_threaded_runner();
  const Pipeline pipeline(runner, Tokenizer::from_file(fixture("tiny_bert.pt")));
  std::vector<std::vector<Encoding>> inputs{pipeline.encode("a"), {}};
  EXPECT_THROW((void)pipeline.predict_encodings(inputs, {}, {}, 4), tsrunner::InvalidInput);
}

TEST(Pipeline, ZeroConcurrentBatchesIsRefused) {
  const Runner runner = single_threaded_runner();
  const Pipeline pipeline(runner, Tokenizer::from_file(fixture("tiny_bert.pt")));
  EXPECT_THROW((void)pipeline.predict({"a"}, {}, 32, 0), tsrunner::InvalidInput);
  EXPECT_THROW((void)pipeline.predict({"a"}, {}, 32, tsrunner::kMaxConcurrentBatches + 1),
               tsrunner::InvalidInput);
}

TEST(Pipeline, ScoreFunctionsAreParsedFromTheirNames) {
  // The names are a closed vocabulary: an unknown one cannot become an option at all.
  EXPECT_EQ(tsrunner::parse_score_function("relu"), std::nullopt);
  for (const auto function : {tsrunner::ScoreFunction::kSoftmax, tsrunner::ScoreFunction::kSigmoid,
                              tsrunner::ScoreFunction::kNone}) {
    EXPECT_EQ(tsrunner::parse_score_function(tsrunner::score_function_name(function)), function);
  }
  const Runner runner = single_threaded_runner();
  tsrunner::TaskOptions options;
  options.score_function = tsrunner::ScoreFunction::kNone;
  EXPECT_NO_THROW(Pipeline(runner, Tokenizer::from_file(fixture("tiny_bert.pt")), options));
}

}  // namespace

namespace {

TEST(Pipeline, TextsAreTakenAsViewsWithoutCopies) {
  const Runner runner = single_threaded_runner();
  const Pipeline pipeline(runner);
  const std::vector<std::string> owned = {"a first text", "and a second, longer one"};
  const std::vector<std::string_view> views(owned.begin(), owned.end());
  const std::vector<Prediction> expected = pipeline.predict(owned);
  auto same = [&](const std::vector<Prediction>& answers, const char* how) {
    ASSERT_EQ(answers.size(), expected.size()) << how;
    for (size_t i = 0; i < answers.size(); ++i) {
      EXPECT_EQ(answers[i].embedding, expected[i].embedding) << how << ", text " << i;
    }
  };
  same(pipeline.predict(views), "vector of string_view");
  same(pipeline.predict(tsrunner::Texts(views.data(), views.size())), "pointer and count");
  same(pipeline.predict({"a first text", "and a second, longer one"}), "braced list");
  EXPECT_THROW((void)pipeline.predict(owned, {"one pair for two texts"}), tsrunner::InvalidInput);
}

TEST(Pipeline, PredictAsyncAnswersAsPredictAndCarriesErrors) {
  const Runner runner = single_threaded_runner();
  const Pipeline pipeline(runner);
  const std::vector<std::string> texts = mixed_texts();
  const std::vector<Prediction> serial = pipeline.predict(texts, {}, 4);
  std::vector<std::future<std::vector<Prediction>>> futures;
  for (int call = 0; call < 6; ++call) futures.push_back(pipeline.predict_async(texts, {}, 4));
  auto failing = pipeline.predict_async({"two texts", "but"}, {"one pair"});
  for (auto& future : futures) {
    const std::vector<Prediction> answers = future.get();
    ASSERT_EQ(answers.size(), serial.size());
    for (size_t i = 0; i < answers.size(); ++i)
      EXPECT_EQ(answers[i].embedding, serial[i].embedding);
  }
  EXPECT_THROW((void)failing.get(), tsrunner::InvalidInput);
}

}  // namespace
