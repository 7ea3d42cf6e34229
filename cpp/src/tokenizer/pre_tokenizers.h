#pragma once

#include <array>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/regex.h"
#include "tokenizer/text_ops.h"

namespace tsrunner::text {

// A step of tokenizer.json's "pre_tokenizer": splits each piece of text into smaller pieces
// (and may rewrite them, as ByteLevel does); the model then tokenizes every piece on its own.
class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void pre_tokenize(std::vector<NormalizedText>& pieces) const = 0;
};

using PreTokenizerPtr = std::shared_ptr<const PreTokenizer>;

// Applies `split_one` to every piece, replacing it with what it returns.
template <typename F>
void split_each(std::vector<NormalizedText>& pieces, F split_one) {
  std::vector<NormalizedText> out;
  out.reserve(pieces.size());
  for (const NormalizedText& piece : pieces) {
    for (NormalizedText& part : split_one(piece)) out.push_back(std::move(part));
  }
  pieces = std::move(out);
}

// GPT-2's map from bytes to printable characters (and back), which byte-level BPE vocabularies
// are written in.
struct ByteLevelAlphabet {
  std::array<char32_t, 256> char_of_byte{};
  std::unordered_map<char32_t, unsigned char> byte_of_char;
  static const ByteLevelAlphabet& get();
};

class BertPreTokenizer : public PreTokenizer {
 public:
  void pre_tokenize(std::vector<NormalizedText>& pieces) const override;
};

// GPT-2, RoBERTa, BART: optional prefix space, GPT-2's split pattern, then every byte of
// UTF-8 as one character of the byte-level alphabet.
class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex);
  void pre_tokenize(std::vector<NormalizedText>& pieces) const override;

 private:
  bool add_prefix_space_;
  bool use_regex_;
  std::shared_ptr<const Regex> regex_;
};

// SentencePiece's word boundary marker: spaces become `replacement` (U+2581), which may be
// prepended, and each piece starts at one.
class MetaspacePreTokenizer : public PreTokenizer {
 public:
  enum class Prepend { kAlways, kNever, kFirst };
  MetaspacePreTokenizer(char32_t replacement, Prepend prepend, bool split)
      : replacement_(replacement), prepend_(prepend), split_(split) {}
  void pre_tokenize(std::vector<NormalizedText>& pieces) const override;

 private:
  char32_t replacement_;
  Prepend prepend_;
  bool split_;
};

// Whitespace (runs of word characters, runs of other non-space characters), WhitespaceSplit,
// Punctuation, Digits, CharDelimiterSplit: splits on a character class or a regex.
class PatternPreTokenizer : public PreTokenizer {
 public:
  using Predicate = bool (*)(char32_t);
  PatternPreTokenizer(Predicate predicate, SplitBehavior behavior)
      : predicate_(predicate), behavior_(behavior) {}
  PatternPreTokenizer(char32_t delimiter, SplitBehavior behavior)
      : delimiter_(delimiter), behavior_(behavior) {}
  PatternPreTokenizer(std::shared_ptr<const Regex> regex, SplitBehavior behavior, bool invert)
      : regex_(std::move(regex)), behavior_(behavior), invert_(invert) {}
  PatternPreTokenizer(std::u32string literal, SplitBehavior behavior, bool invert)
      : literal_(std::move(literal)), use_literal_(true), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(std::vector<NormalizedText>& pieces) const override;

 private:
  Predicate predicate_ = nullptr;
  char32_t delimiter_ = 0;
  std::shared_ptr<const Regex> regex_;
  std::u32string literal_;
  bool use_literal_ = false;
  SplitBehavior behavior_;
  bool invert_ = false;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<PreTokenizerPtr> steps) : steps_(std::move(steps)) {}
  void pre_tokenize(std::vector<NormalizedText>& pieces) const override;

 private:
  std::vector<PreTokenizerPtr> steps_;
};

// HF's Whitespace pre-tokenizer: `\w+|[^\w\s]+` with the regex crate's Unicode classes.
PreTokenizerPtr make_whitespace_pre_tokenizer();

}  // namespace tsrunner::text
