#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/unicode.h"

namespace tsrunner::text {

// One token of one text, before special tokens are added.
struct Token {
  int64_t id = 0;
  std::string value;
  ByteSpan span;      // into the original text
  int64_t word = -1;  // which pre-tokenized piece (or added token) of its text it came from
};

using TokenList = std::vector<Token>;

}  // namespace tsrunner::text
