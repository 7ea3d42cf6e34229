#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "tokenizer/token.h"
#include "tsrunner/tokenizer.h"

namespace tsrunner::text {

// HF tokenizers' truncation settings ("truncation" in tokenizer.json).
struct Truncation {
  enum class Strategy { kLongestFirst, kOnlyFirst, kOnlySecond };
  size_t max_length = 0;  // including special tokens
  Strategy strategy = Strategy::kLongestFirst;
  bool from_left = false;  // direction "Left": keep the end of the text
};

// One item of a TemplateProcessing template: a special token or a sequence ($A or $B).
struct TemplatePiece {
  bool is_sequence = false;
  int sequence = 0;                 // 0 for $A, 1 for $B
  std::vector<int64_t> ids;         // special token: its ids...
  std::vector<std::string> tokens;  // ...and their text
  int64_t type_id = 0;
};

// HF tokenizers' TemplateProcessing (BertProcessing is the same with a fixed template):
// adds special tokens around the first text and its pair and assigns type ids.
struct PostProcessor {
  std::vector<TemplatePiece> single;
  std::vector<TemplatePiece> pair;
  // Byte-level offset trimming (RobertaProcessing, ByteLevel): offsets leave out the leading
  // and trailing spaces a token carries; with add_prefix_space, the first token's one space
  // was added, not in the text, and stays.
  bool trim_offsets = false;
  bool add_prefix_space = false;

  size_t added_tokens(bool is_pair) const;
  Encoding apply(const TokenList& first, const TokenList* second) const;

 private:
  Encoding apply_template(const TokenList& first, const TokenList* second) const;
};

// Shortens the token lists so that, with the special tokens `added` adds, they fit
// truncation.max_length, splitting the budget between a pair the way HF tokenizers does.
// Throws InvalidInput when max_length leaves no room for any text.
void truncate(const Truncation& truncation, size_t added, TokenList& first, TokenList* second);

// `tokens` cut into windows of at most `window` tokens, each starting `window - stride` after
// the previous one (so consecutive windows share `stride` tokens), the last one reaching the
// end: HF tokenizers' overflowing pieces (Encoding::truncate, direction right). Needs
// stride < window.
std::vector<TokenList> windows(const TokenList& tokens, size_t window, size_t stride);

}  // namespace tsrunner::text
