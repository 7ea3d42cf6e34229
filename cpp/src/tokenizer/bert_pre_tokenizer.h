#pragma once

#include <vector>

#include "tokenizer/unicode.h"

namespace tsrunner::text {

// HF tokenizers' BertPreTokenizer: splits on whitespace (dropped) and on punctuation (each
// punctuation character becomes a word of its own). Empty words are dropped.
std::vector<NormalizedText> bert_pre_tokenize(const NormalizedText& text);

}  // namespace tsrunner::text
