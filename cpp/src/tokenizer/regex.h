#pragma once

#include <memory>
#include <string>

#include "tokenizer/text_ops.h"

namespace tsrunner::text {

// A regular expression run by Oniguruma, the engine HF tokenizers uses for its patterns
// (GPT-2's split pattern, Split and Replace), so character classes such as \p{L} and \s mean
// exactly what they mean there. Immutable after construction; safe to share across threads.
class Regex {
 public:
  // Throws LoadError naming `where` when the pattern does not compile.
  Regex(const std::string& pattern, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Every match and the text between them, as HF's find_matches gives them (an empty match
  // right after another match is skipped).
  Pieces find_matches(const NormalizedText& text) const;

 private:
  struct Compiled;
  std::unique_ptr<Compiled> compiled_;
};

}  // namespace tsrunner::text
