#include "tsrunner/tokenizer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "test_paths.h"
#include "tsrunner/errors.h"

namespace {

using tsrunner::Encoding;
using tsrunner::Tokenizer;
using tsrunner::testing::fixture;

// The MiniLM tokenizer embedded in the tiny BERT export (max_length 64).
const Tokenizer& minilm_tokenizer() {
  static const Tokenizer tokenizer = Tokenizer::from_file(fixture("tiny_bert.pt"));
  return tokenizer;
}

TEST(TokenizerTest, EncodesLikeBert) {
  const Encoding encoding = minilm_tokenizer().encode("Who was Jim Henson?");
  EXPECT_EQ(encoding.ids, (std::vector<int64_t>{101, 2040, 2001, 3958, 27227, 1029, 102}));
  EXPECT_EQ(encoding.tokens.front(), "[CLS]");
  EXPECT_EQ(encoding.type_ids, std::vector<int64_t>(7, 0));
  EXPECT_EQ(encoding.attention_mask, std::vector<int64_t>(7, 1));
}

TEST(TokenizerTest, OffsetsAreBytesIntoTheOriginalText) {
  const std::string text = "Caf\xc3\xa9 \xe4\xb8\xad!";  // "Café 中!"
  const Encoding encoding = minilm_tokenizer().encode(text);
  ASSERT_EQ(encoding.tokens,
            (std::vector<std::string>{"[CLS]", "cafe", "\xe4\xb8\xad", "!", "[SEP]"}));
  EXPECT_EQ(encoding.offsets[1], (std::pair<size_t, size_t>{0, 5}));  // é is two bytes
  EXPECT_EQ(encoding.offsets[2], (std::pair<size_t, size_t>{6, 9}));
  EXPECT_EQ(encoding.offsets[3], (std::pair<size_t, size_t>{9, 10}));
  EXPECT_EQ(encoding.offsets[0], (std::pair<size_t, size_t>{0, 0}));
}

TEST(TokenizerTest, PairsGetTypeIdsAndTruncateToTheManifestLength) {
  const Tokenizer& tokenizer = minilm_tokenizer();
  ASSERT_EQ(tokenizer.max_length(), std::optional<size_t>(64));
  std::string long_text;
  for (int i = 0; i < 100; ++i) long_text += "word ";
  const Encoding encoding = tokenizer.encode(long_text, std::string_view("a pair"));
  EXPECT_EQ(encoding.size(), 64u);
  EXPECT_EQ(encoding.type_ids.back(), 1);
  EXPECT_EQ(encoding.sequence_ids[encoding.size() - 2], 1);
}

TEST(TokenizerTest, BatchesArePaddedToTheLongest) {
  const std::vector<Encoding> batch = minilm_tokenizer().encode_batch({"a", "a b c d"});
  ASSERT_EQ(batch[0].size(), batch[1].size());
  EXPECT_EQ(batch[0].attention_mask.back(), 0);
  EXPECT_EQ(batch[0].ids.back(), minilm_tokenizer().pad_id());
  EXPECT_EQ(minilm_tokenizer().encode_batch({"a"}, {}, 16)[0].size(), 16u);
}

TEST(TokenizerTest, InvalidUtf8IsInvalidInput) {
  EXPECT_THROW(minilm_tokenizer().encode("bad \xff byte"), tsrunner::InvalidInput);
}

TEST(TokenizerTest, OtherModelsAreRefused) {
  const std::string bpe = R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})";
  try {
    Tokenizer::from_json(bpe, std::nullopt);
    FAIL() << "a BPE tokenizer was accepted";
  } catch (const tsrunner::LoadError& error) {
    EXPECT_NE(
        std::string(error.what()).find("native tokenization supports WordPiece; pass token ids"),
        std::string::npos);
  }
}

}  // namespace
