#include "tokenizer/wordpiece.h"

namespace tsrunner::text {

void WordPiece::tokenize(const NormalizedText& word, TokenList& out) const {
  if (word.empty()) return;
  const ByteSpan whole{word.spans.front().begin, word.spans.back().end};
  if (word.size() > max_input_chars_per_word) {
    out.push_back({unk_id, unk_token, whole});
    return;
  }
  // The word in UTF-8 with where each character starts, so candidates are plain substrings.
  std::string utf8;
  std::vector<size_t> char_start;
  char_start.reserve(word.size() + 1);
  for (char32_t c : word.chars) {
    char_start.push_back(utf8.size());
    append_utf8(utf8, c);
  }
  char_start.push_back(utf8.size());

  const size_t first = out.size();
  std::string candidate;
  size_t start = 0;
  while (start < word.size()) {
    bool found = false;
    size_t end = word.size();
    for (; end > start; --end) {
      candidate.assign(start > 0 ? continuing_subword_prefix : std::string());
      candidate.append(utf8, char_start[start], char_start[end] - char_start[start]);
      if (auto it = vocab.find(candidate); it != vocab.end()) {
        out.push_back({it->second, candidate, {word.spans[start].begin, word.spans[end - 1].end}});
        found = true;
        break;
      }
    }
    if (!found) {
      out.resize(first);
      out.push_back({unk_id, unk_token, whole});
      return;
    }
    start = end;
  }
}

}  // namespace tsrunner::text
