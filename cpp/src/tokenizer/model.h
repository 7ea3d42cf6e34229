#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include "tokenizer/token.h"

namespace tsrunner::text {

// tokenizer.json's "model": turns one pre-tokenized piece into tokens. WordPiece, BPE and
// Unigram derive from it.
class Model {
 public:
  virtual ~Model() = default;
  // Appends the tokens of one piece to `out`; spans point into the original text.
  virtual void tokenize(const NormalizedText& piece, TokenList& out) const = 0;

  std::unordered_map<std::string, int64_t> vocab;
  std::unordered_map<int64_t, std::string> token_of_id;  // the inverse of `vocab`
  std::optional<int64_t> unknown_id;                     // the unknown token, if any

  void index_vocab() {
    token_of_id.clear();
    token_of_id.reserve(vocab.size());
    for (const auto& [token, id] : vocab) token_of_id.emplace(id, token);
  }
};

}  // namespace tsrunner::text
