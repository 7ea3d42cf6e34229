#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tsrunner {
class Tokenizer;
}

namespace tsrunner::detail {

// Incremental detokenization of one sequence with stop strings (as text-generation-inference
// does it): the continuation is decoded as a whole after every token, and only text that can no
// longer change is released: never a trailing U+FFFD (a character whose bytes are still coming),
// never a suffix that may be the start of a stop string. A stop string found anywhere in the
// decoded text (across token boundaries) ends the sequence before it.
class TextStream {
 public:
  // `tokenizer` may be null (ids only): then no text is produced and stop strings never match.
  TextStream(const Tokenizer* tokenizer, std::vector<std::string> stop);

  // Adds a generated token; returns the text released by it (often empty).
  std::string push(int64_t token_id);
  // Whether a stop string appeared; text() then ends before it.
  bool stopped() const { return stopped_; }
  // Releases whatever was held back (the sequence ended) and returns it.
  std::string finish();
  // The text so far (final once stopped() or after finish()).
  const std::string& text() const { return text_; }

 private:
  const Tokenizer* tokenizer_;
  std::vector<std::string> stop_;
  std::vector<int64_t> ids_;
  std::string text_;     // the decoded continuation (cut at a stop string)
  size_t released_ = 0;  // bytes of text_ already returned
  bool stopped_ = false;
};

}  // namespace tsrunner::detail
