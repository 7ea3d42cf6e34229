#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/unicode.h"

namespace tsrunner::text {

// An entry of tokenizer.json's "added_tokens" (special tokens such as [CLS] among them).
struct AddedToken {
  int64_t id = 0;
  std::string content;
  bool special = false;     // skipped by decode(skip_special_tokens=true)
  bool normalized = false;  // matched in the normalized text instead of the raw text
  bool lstrip = false;      // the match swallows whitespace on its left
  bool rstrip = false;      // ... and on its right
  std::u32string pattern;   // what is searched for (the content, normalized when `normalized`)
};

// A piece of text: either an added token that was found, or text left to tokenize.
struct Segment {
  NormalizedText text;
  const AddedToken* token = nullptr;
};

// Finds added tokens in text the way HF tokenizers does (leftmost-longest matching, as its
// Aho-Corasick automaton is configured), so "[CLS]" typed in a text is the special token.
class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);

  bool empty() const { return tokens_.empty(); }
  std::vector<Segment> split(const NormalizedText& text) const;

 private:
  std::vector<AddedToken> tokens_;  // longest pattern first
};

}  // namespace tsrunner::text
