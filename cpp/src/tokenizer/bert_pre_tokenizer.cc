#include "tokenizer/bert_pre_tokenizer.h"

namespace tsrunner::text {

std::vector<NormalizedText> bert_pre_tokenize(const NormalizedText& text) {
  std::vector<NormalizedText> words;
  size_t word_begin = 0;
  auto close_word = [&](size_t end) {
    if (end > word_begin) words.push_back(text.slice(word_begin, end));
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char32_t c = text.chars[i];
    if (is_white_space(c)) {
      close_word(i);
      word_begin = i + 1;
    } else if (is_punctuation(c)) {
      close_word(i);
      words.push_back(text.slice(i, i + 1));
      word_begin = i + 1;
    }
  }
  close_word(text.size());
  return words;
}

}  // namespace tsrunner::text
