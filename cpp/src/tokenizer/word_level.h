#pragma once

#include <string>

#include "tokenizer/model.h"

namespace tsrunner::text {

// HF tokenizers' WordLevel model: each piece is one token, or the unknown token.
struct WordLevel : Model {
  int64_t unk_id = 0;
  void tokenize(const NormalizedText& piece, TokenList& out) const override {
    if (piece.empty()) return;
    const std::string word = to_utf8(piece.chars);
    const auto it = vocab.find(word);
    const int64_t id = it == vocab.end() ? unk_id : it->second;
    out.push_back({id,
                   token_of_id.count(id) ? token_of_id.at(id) : word,
                   {piece.spans.front().begin, piece.spans.back().end}});
  }
};

}  // namespace tsrunner::text
