#include "tokenizer/bert_normalizer.h"

namespace tsrunner::text {
namespace {

// Tab, newline and carriage return are C0 controls that BERT treats as whitespace.
bool is_bert_whitespace(char32_t c) {
  return c == U'\t' || c == U'\n' || c == U'\r' || is_white_space(c);
}

bool is_bert_control(char32_t c) {
  if (c == U'\t' || c == U'\n' || c == U'\r') return false;
  return is_other_category(c);
}

}  // namespace

NormalizedText BertNormalizer::normalize(const NormalizedText& input) const {
  NormalizedText text;
  text.chars.reserve(input.size());
  text.spans.reserve(input.size());
  for (size_t i = 0; i < input.size(); ++i) {
    const char32_t c = input.chars[i];
    const ByteSpan span = input.spans[i];
    if (clean_text) {
      if (c == 0 || c == 0xFFFD || is_bert_control(c)) continue;
      if (is_bert_whitespace(c)) {
        text.push_back(U' ', span);
        continue;
      }
    }
    if (handle_chinese_chars && is_cjk_ideograph(c)) {
      text.push_back(U' ', span);
      text.push_back(c, span);
      text.push_back(U' ', span);
      continue;
    }
    text.push_back(c, span);
  }

  std::u32string mapped;
  if (strip_accents) {
    NormalizedText stripped;
    stripped.chars.reserve(text.size());
    stripped.spans.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
      mapped.clear();
      append_nfd(mapped, text.chars[i]);
      for (char32_t d : mapped) stripped.push_back(d, text.spans[i]);
    }
    canonical_reorder(stripped);  // NFD first, then drop the marks, as HF does
    text.chars.clear();
    text.spans.clear();
    for (size_t i = 0; i < stripped.size(); ++i) {
      if (!is_nonspacing_mark(stripped.chars[i]))
        text.push_back(stripped.chars[i], stripped.spans[i]);
    }
  }

  if (lowercase) {
    NormalizedText lowered;
    lowered.chars.reserve(text.size());
    lowered.spans.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
      mapped.clear();
      append_lowercase(mapped, text.chars[i]);
      for (char32_t l : mapped) lowered.push_back(l, text.spans[i]);
    }
    text = std::move(lowered);
  }
  return text;
}

}  // namespace tsrunner::text
