#pragma once

#include <optional>
#include <string>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bert_normalizer.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/wordpiece.h"

namespace tsrunner::text {

// Everything tokenizer.json says, in the form the native pipeline runs.
struct TokenizerSpec {
  std::vector<AddedToken> added_tokens;  // patterns not yet filled in
  std::optional<BertNormalizer> normalizer;
  bool bert_pre_tokenizer = false;
  WordPiece model;
  PostProcessor post_processor;
  std::optional<Truncation> truncation;
  std::optional<int64_t> pad_id;  // from "padding", when the file sets one
  std::string pad_token;
};

// Parses a HF tokenizer.json. Throws LoadError naming the field when the JSON is malformed or
// asks for a component the native tokenizer does not implement.
TokenizerSpec parse_tokenizer_json(const std::string& json_text);

}  // namespace tsrunner::text
