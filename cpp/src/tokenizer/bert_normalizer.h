#pragma once

#include "tokenizer/normalizers.h"

namespace tsrunner::text {

// HF tokenizers' BertNormalizer, in its order: clean text, space out CJK ideographs, strip
// accents, lowercase. Every output character keeps the span of the input character it came
// from, so token offsets still point into the original text.
struct BertNormalizer : Normalizer {
  bool clean_text = true;
  bool handle_chinese_chars = true;
  bool strip_accents = true;  // already resolved: the file's null means "same as lowercase"
  bool lowercase = true;

  NormalizedText normalize(const NormalizedText& input) const override;
};

}  // namespace tsrunner::text
