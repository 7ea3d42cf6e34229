// The request path's two halves used on their own, as an application that assembles its own
// batching would: InputEncoder (text or ids -> encodings) and Predictor (a padded batch ->
// answers) give exactly what Pipeline gives.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "test_paths.h"
#include "tsrunner/errors.h"
#include "tsrunner/input_encoder.h"
#include "tsrunner/pipeline.h"
#include "tsrunner/predictor.h"

namespace {

using tsrunner::Encoding;
using tsrunner::InputEncoder;
using tsrunner::Pipeline;
using tsrunner::Prediction;
using tsrunner::Predictor;
using tsrunner::Runner;
using tsrunner::testing::fixture;

Runner single_threaded_runner() {
  tsrunner::RunnerOptions options;
  options.threads = 1;
  return Runner(fixture("tiny_bert.pt"), options);
}

TEST(RequestPath, EncoderAndPredictorComposeToThePipelinesAnswer) {
  const Runner runner = single_threaded_runner();
  const Pipeline pipeline(runner);
  const std::vector<std::string> texts{"a short one", "a somewhat longer text than the first"};
  const std::vector<Prediction> expected = pipeline.predict(texts, {}, 2);

  auto tokenizer = std::make_shared<const tsrunner::Tokenizer>(
      tsrunner::Tokenizer::from_file(fixture("tiny_bert.pt")));
  const InputEncoder encoder(runner.manifest(), tokenizer);
  const Predictor predictor(runner, tokenizer);
  std::vector<Encoding> batch;
  for (const std::string& text : texts) batch.push_back(encoder.encode(text, std::nullopt).at(0));
  encoder.pad(batch, encoder.padded_length(std::max(batch[0].size(), batch[1].size())));
  const std::vector<Prediction> got = predictor.predict(batch, {}, {}, {});
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].embedding, expected[i].embedding);
}

TEST(RequestPath, TokenIdsNeedNoTokenizerAndAreCheckedAgainstTheManifest) {
  const Runner runner = single_threaded_runner();
  const Pipeline pipeline(runner);
  const Encoding from_text = pipeline.encode("hello world").at(0);

  const InputEncoder ids_only(runner.manifest(), nullptr, "no tokenizer here");
  EXPECT_FALSE(ids_only.has_tokenizer());
  try {
    (void)ids_only.encode("hello", std::nullopt);
    FAIL() << "text without a tokenizer must be refused";
  } catch (const tsrunner::InvalidInput& error) {
    EXPECT_NE(std::string(error.what()).find("no tokenizer here"), std::string::npos);
  }
  std::vector<Encoding> batch{ids_only.encode_ids(from_text.ids)};
  const std::vector<Prediction> by_ids = pipeline.predict_encodings({batch}, {}, {}, 1);
  EXPECT_EQ(by_ids.at(0).embedding, pipeline.predict({"hello world"}).at(0).embedding);

  const int64_t vocab = runner.manifest().vocab_size.value_or(0);
  ASSERT_GT(vocab, 0);
  EXPECT_THROW((void)ids_only.encode_ids({1, vocab}), tsrunner::InvalidInput);
  EXPECT_THROW((void)ids_only.encode_ids({}), tsrunner::InvalidInput);
  EXPECT_THROW((void)ids_only.encode_ids({1, 2}, {0}), tsrunner::InvalidInput);
}

TEST(RequestPath, ChoicesAreRefusedWhereTheTaskIsNotMultipleChoice) {
  const Runner runner = single_threaded_runner();
  const Pipeline pipeline(runner);
  EXPECT_THROW((void)pipeline.encoder().encode_choices("q", {"a", "b"}), tsrunner::InvalidInput);
  EXPECT_THROW((void)pipeline.predict_choices({"q"}, {{"a", "b"}}), tsrunner::InvalidInput);
}

}  // namespace
