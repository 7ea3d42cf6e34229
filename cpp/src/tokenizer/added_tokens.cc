#include "tokenizer/added_tokens.h"

#include <algorithm>

namespace tsrunner::text {

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  tokens_.erase(std::remove_if(tokens_.begin(), tokens_.end(),
                               [](const AddedToken& t) { return t.pattern.empty(); }),
                tokens_.end());
  std::stable_sort(tokens_.begin(), tokens_.end(), [](const AddedToken& a, const AddedToken& b) {
    return a.pattern.size() > b.pattern.size();
  });
}

std::vector<Segment> AddedTokenMatcher::split(const NormalizedText& text) const {
  std::vector<Segment> segments;
  if (tokens_.empty()) {
    segments.push_back({text, nullptr});
    return segments;
  }
  const std::u32string_view chars(text.chars);
  size_t plain_begin = 0;  // start of the text not yet emitted
  size_t i = 0;
  while (i < text.size()) {
    const AddedToken* match = nullptr;
    for (const AddedToken& token : tokens_) {  // longest first: the first hit is the longest
      if (chars.substr(i, token.pattern.size()) == token.pattern) {
        match = &token;
        break;
      }
    }
    if (!match) {
      ++i;
      continue;
    }
    size_t begin = i;
    size_t end = i + match->pattern.size();
    if (match->lstrip) {
      while (begin > plain_begin && is_white_space(text.chars[begin - 1])) --begin;
    }
    if (match->rstrip) {
      while (end < text.size() && is_white_space(text.chars[end])) ++end;
    }
    if (begin > plain_begin) segments.push_back({text.slice(plain_begin, begin), nullptr});
    segments.push_back({text.slice(begin, end), match});
    plain_begin = end;
    i = end;
  }
  if (plain_begin < text.size())
    segments.push_back({text.slice(plain_begin, text.size()), nullptr});
  return segments;
}

}  // namespace tsrunner::text
