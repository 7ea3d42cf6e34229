#include "tokenizer/normalizers.h"

#include <utf8proc.h>

#include "tokenizer/text_ops.h"

namespace tsrunner::text {
namespace {

const utf8proc_property_t* property(char32_t c) {
  return utf8proc_get_property(static_cast<utf8proc_int32_t>(c));
}

// Whether a character can combine with what precedes it in composition: a non-starter, the
// second character of a canonical composition, or a Hangul vowel or trailing consonant.
bool joins_previous(char32_t c) {
  const utf8proc_property_t* p = property(c);
  if (p->combining_class != 0) return true;
  if (p->comb_index != UINT16_MAX && p->comb_index >= 0x8000) return true;
  return (c >= 0x1161 && c <= 0x1175) || (c >= 0x11A8 && c <= 0x11C2);
}

void decompose(std::u32string& out, char32_t c, bool compat) {
  if (!has_decomposition(c, compat)) {  // HF's tables: newer decompositions do not apply
    out.push_back(c);
    return;
  }
  utf8proc_int32_t buffer[32];
  int boundclass = UTF8PROC_BOUNDCLASS_START;
  const utf8proc_option_t options =
      static_cast<utf8proc_option_t>(UTF8PROC_DECOMPOSE | (compat ? UTF8PROC_COMPAT : 0));
  const utf8proc_ssize_t count =
      utf8proc_decompose_char(static_cast<utf8proc_int32_t>(c), buffer, 32, options, &boundclass);
  if (count <= 0 || count > 32) {
    out.push_back(c);
    return;
  }
  for (utf8proc_ssize_t i = 0; i < count; ++i) out.push_back(static_cast<char32_t>(buffer[i]));
}

// The normalization of one chunk of characters (a starter and what joins it).
std::u32string normalize_chunk(std::u32string_view chunk, bool compat, bool compose) {
  std::u32string decomposed;
  for (char32_t c : chunk) decompose(decomposed, c, compat);
  // Canonical ordering: a stable sort of each run of non-starters.
  for (size_t i = 1; i < decomposed.size(); ++i) {
    for (size_t j = i; j > 0; --j) {
      const auto current = property(decomposed[j])->combining_class;
      const auto previous = property(decomposed[j - 1])->combining_class;
      if (current == 0 || previous <= current) break;
      std::swap(decomposed[j], decomposed[j - 1]);
    }
  }
  if (!compose || decomposed.empty()) return decomposed;
  std::vector<utf8proc_int32_t> buffer(decomposed.begin(), decomposed.end());
  const utf8proc_ssize_t length =
      utf8proc_normalize_utf32(buffer.data(), static_cast<utf8proc_ssize_t>(buffer.size()),
                               static_cast<utf8proc_option_t>(UTF8PROC_COMPOSE | UTF8PROC_STABLE));
  if (length < 0) return decomposed;
  return std::u32string(buffer.begin(), buffer.begin() + length);
}

}  // namespace

NormalizedText UnicodeNormalizer::normalize(const NormalizedText& input) const {
  const bool compat = form_ == Form::kNFKC || form_ == Form::kNFKD;
  const bool compose = form_ == Form::kNFC || form_ == Form::kNFKC;
  std::vector<CharChange> changes;
  changes.reserve(input.size());
  std::u32string first_part;
  size_t chunk_begin = 0;
  auto flush = [&](size_t chunk_end) {
    if (chunk_end == chunk_begin) return;
    const std::u32string_view chunk(input.chars.data() + chunk_begin, chunk_end - chunk_begin);
    const std::u32string result = normalize_chunk(chunk, compat, compose);
    // HF's alignment: characters pair up with the old ones in order; extra ones are
    // inserted, and when fewer come out the last one removes the rest.
    const size_t old_count = chunk.size();
    for (size_t i = 0; i < result.size(); ++i) {
      int change = 0;
      if (i >= old_count) {
        change = 1;
      } else if (i + 1 == result.size() && result.size() < old_count) {
        change = -static_cast<int>(old_count - result.size());
      }
      changes.push_back({result[i], change});
    }
    chunk_begin = chunk_end;
  };
  for (size_t i = 0; i < input.size(); ++i) {
    first_part.clear();
    decompose(first_part, input.chars[i], compat);
    if (i > 0 && !joins_previous(first_part.empty() ? input.chars[i] : first_part[0])) flush(i);
  }
  flush(input.size());
  return transform(input, changes);
}

NormalizedText LowercaseNormalizer::normalize(const NormalizedText& input) const {
  return map_each(input, append_lowercase);
}

NormalizedText StripNormalizer::normalize(const NormalizedText& input) const {
  size_t begin = 0;
  size_t end = input.size();
  if (left_) {
    while (begin < end && is_white_space(input.chars[begin])) ++begin;
  }
  if (right_) {
    while (end > begin && is_white_space(input.chars[end - 1])) --end;
  }
  NormalizedText out = input.slice(begin, end);
  out.origin = input.origin;
  return out;
}

NormalizedText StripAccentsNormalizer::normalize(const NormalizedText& input) const {
  NormalizedText out;
  out.origin = input.origin;
  for (size_t i = 0; i < input.size(); ++i) {
    if (!is_mark(input.chars[i])) out.push_back(input.chars[i], input.spans[i]);
  }
  return out;
}

NormalizedText ReplaceNormalizer::normalize(const NormalizedText& input) const {
  const Pieces matches = regex_ ? regex_->find_matches(input) : literal_matches(input, literal_);
  return replace(input, matches, content_);
}

NormalizedText PrependNormalizer::normalize(const NormalizedText& input) const {
  return prepend(input, prefix_);
}

NormalizedText SequenceNormalizer::normalize(const NormalizedText& input) const {
  NormalizedText text = input;
  for (const NormalizerPtr& step : steps_) text = step->normalize(text);
  return text;
}

}  // namespace tsrunner::text
