#include "tsrunner/tokenizer.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
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

TEST(TokenizerTest, UnknownModelsAreRefused) {
  const std::string fancy = R"({"model": {"type": "Fancy", "vocab": {"a": 0}}})";
  try {
    Tokenizer::from_json(fancy, std::nullopt);
    FAIL() << "an unknown model was accepted";
  } catch (const tsrunner::LoadError& error) {
    EXPECT_NE(std::string(error.what()).find("model Fancy is not supported"), std::string::npos);
  }
}

// A Unigram tokenizer with Metaspace: byte offsets in C++ (the Python binding converts them),
// the unknown character kept as its text, and decode back to the text.
TEST(TokenizerTest, UnigramMetaspaceByteOffsetsAndDecode) {
  const std::string json = R"({
    "model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0], ["\u2581caf", -1],
              ["\u00e9", -2], ["\u2581", -3], ["x", -4]]},
    "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always"},
    "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always"}})";
  const Tokenizer tokenizer = Tokenizer::from_json(json, std::nullopt);
  const tsrunner::Encoding encoding = tokenizer.encode("caf\u00e9 x\u00df");
  ASSERT_EQ(encoding.tokens,
            (std::vector<std::string>{"\u2581caf", "\u00e9", "\u2581", "x", "\u00df"}));
  EXPECT_EQ(encoding.ids, (std::vector<int64_t>{1, 2, 3, 4, 0}));
  // "café xß": é is bytes 3-5, ß bytes 7-9; the "▁" of the space points at the space.
  EXPECT_EQ(encoding.offsets,
            (std::vector<std::pair<size_t, size_t>>{{0, 3}, {3, 5}, {5, 6}, {6, 7}, {7, 9}}));
  EXPECT_EQ(encoding.word_ids, (std::vector<int64_t>{0, 0, 1, 1, 1}));
  EXPECT_EQ(tokenizer.decode(encoding.ids), "caf\u00e9 x<unk>");
  EXPECT_EQ(tokenizer.unknown_id(), 0);
}

// BPE and Unigram keep the words they tokenized: a word seen again (elsewhere in the text, in
// another text, from another thread) gets the same tokens with its own offsets.
TEST(TokenizerTest, RepeatedWordsKeepTheirOwnOffsetsAcrossThreads) {
  const std::string bpe = R"({
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "abb": 3, " ": 4},
              "merges": ["a b", "ab b"]},
    "pre_tokenizer": {"type": "WhitespaceSplit"}})";
  const std::string unigram = R"({
    "model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0], ["a", -2], ["b", -2],
              ["ab", -1], ["abb", -1.5]]},
    "pre_tokenizer": {"type": "WhitespaceSplit"}})";
  for (const std::string& json : {bpe, unigram}) {
    const Tokenizer tokenizer = Tokenizer::from_json(json, std::nullopt);
    const std::string text = "abb ab  abb xabb";
    const Encoding first = tokenizer.encode(text);
    ASSERT_EQ(first.offsets.size(), first.ids.size());
    EXPECT_EQ(first.offsets.front(), (std::pair<size_t, size_t>{0, 3}));
    EXPECT_EQ(first.offsets[2], (std::pair<size_t, size_t>{8, 11}));  // "abb" again, cached
    std::vector<Encoding> results(4);
    std::vector<std::thread> threads;
    for (Encoding& result : results) {
      threads.emplace_back([&] {
        for (int i = 0; i < 200; ++i) result = tokenizer.encode(text);
      });
    }
    for (std::thread& thread : threads) thread.join();
    for (const Encoding& result : results) {
      EXPECT_EQ(result.ids, first.ids);
      EXPECT_EQ(result.offsets, first.offsets);
      EXPECT_EQ(result.tokens, first.tokens);
    }
  }
}

}  // namespace
