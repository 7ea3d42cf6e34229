#include "tokenizer/bert_normalizer.h"

#include "tokenizer/normalizers.h"
#include "tokenizer/text_ops.h"

#include <string>

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
  text.origin = input.origin;
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

  if (strip_accents) {
    // NFD first (with HF's alignment of reordered marks), then drop the marks, as HF does.
    static const UnicodeNormalizer nfd(UnicodeNormalizer::Form::kNFD);
    const NormalizedText stripped = nfd.normalize(text);
    text.chars.clear();
    text.spans.clear();
    for (size_t i = 0; i < stripped.size(); ++i) {
      if (!is_nonspacing_mark(stripped.chars[i]))
        text.push_back(stripped.chars[i], stripped.spans[i]);
    }
  }
  if (lowercase) text = map_each(text, append_lowercase);
  return text;
}

}  // namespace tsrunner::text
