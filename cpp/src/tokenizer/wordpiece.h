#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include "tokenizer/model.h"

namespace tsrunner::text {

// HF tokenizers' WordPiece model: greedy longest-match-first sub-words, continuations carry
// the prefix ("##"); a word longer than max_input_chars_per_word characters, or one that
// cannot be covered by the vocabulary, becomes a single unknown token.
struct WordPiece : Model {
  std::string unk_token = "[UNK]";
  int64_t unk_id = 0;
  std::string continuing_subword_prefix = "##";
  size_t max_input_chars_per_word = 100;

  // Appends the tokens of one pre-tokenized word to `out`.
  void tokenize(const NormalizedText& word, TokenList& out) const override;
};

}  // namespace tsrunner::text
