#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/decoders.h"
#include "tokenizer/model.h"
#include "tokenizer/normalizers.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizers.h"

namespace tsrunner::text {

// Everything tokenizer.json says, in the form the native pipeline runs.
struct TokenizerSpec {
  std::vector<AddedToken> added_tokens;  // patterns not yet filled in
  NormalizerPtr normalizer;              // null: none
  PreTokenizerPtr pre_tokenizer;         // null: none
  std::shared_ptr<const Model> model;
  std::string model_type;  // "WordPiece", "BPE", "Unigram", "WordLevel"
  DecoderPtr decoder;      // null: tokens joined with spaces
  PostProcessor post_processor;
  std::optional<Truncation> truncation;
  std::optional<int64_t> pad_id;  // from "padding", when the file sets one
  std::string pad_token;
};

// Parses a HF tokenizer.json. Throws LoadError naming the field when the JSON is malformed or
// asks for a component the native tokenizer does not implement.
TokenizerSpec parse_tokenizer_json(const std::string& json_text);

}  // namespace tsrunner::text
