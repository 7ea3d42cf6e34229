#include "tokenizer/pre_tokenizers.h"

#include "tokenizer/bert_pre_tokenizer.h"

namespace tsrunner::text {

const ByteLevelAlphabet& ByteLevelAlphabet::get() {
  static const ByteLevelAlphabet alphabet = [] {
    ByteLevelAlphabet a;
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      a.char_of_byte[static_cast<size_t>(b)] = printable ? static_cast<char32_t>(b) : next++;
      a.byte_of_char[a.char_of_byte[static_cast<size_t>(b)]] = static_cast<unsigned char>(b);
    }
    return a;
  }();
  return alphabet;
}

void BertPreTokenizer::pre_tokenize(std::vector<NormalizedText>& pieces) const {
  split_each(pieces, [](const NormalizedText& piece) { return bert_pre_tokenize(piece); });
}

ByteLevelPreTokenizer::ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
    : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {
  if (use_regex_) {
    regex_ = std::make_shared<Regex>(
        R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)",
        "pre_tokenizer ByteLevel");
  }
}

void ByteLevelPreTokenizer::pre_tokenize(std::vector<NormalizedText>& pieces) const {
  split_each(pieces, [&](const NormalizedText& piece) {
    NormalizedText text = piece;
    if (add_prefix_space_ && !text.empty() && text.chars[0] != U' ') text = prepend(text, U" ");
    if (!use_regex_) return std::vector<NormalizedText>{std::move(text)};
    return split(text, regex_->find_matches(text), SplitBehavior::kIsolated);
  });
  // Every byte of a character's UTF-8 becomes one character, all with the character's span.
  const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::get();
  std::string utf8;
  for (NormalizedText& piece : pieces) {
    NormalizedText mapped;
    mapped.origin = piece.origin;
    mapped.chars.reserve(piece.size());
    mapped.spans.reserve(piece.size());
    for (size_t i = 0; i < piece.size(); ++i) {
      utf8.clear();
      append_utf8(utf8, piece.chars[i]);
      for (char byte : utf8) {
        mapped.push_back(alphabet.char_of_byte[static_cast<unsigned char>(byte)], piece.spans[i]);
      }
    }
    piece = std::move(mapped);
  }
}

void MetaspacePreTokenizer::pre_tokenize(std::vector<NormalizedText>& pieces) const {
  split_each(pieces, [&](const NormalizedText& piece) {
    NormalizedText text = piece;
    for (char32_t& c : text.chars) {
      if (c == U' ') c = replacement_;
    }
    const bool starts_with_marker = !text.empty() && text.chars[0] == replacement_;
    if (!starts_with_marker &&
        (prepend_ == Prepend::kAlways || (prepend_ == Prepend::kFirst && text.origin == 0))) {
      const char32_t marker[1] = {replacement_};
      text = prepend(text, std::u32string_view(marker, 1));
    }
    if (!split_) return std::vector<NormalizedText>{std::move(text)};
    const char32_t marker = replacement_;
    return split(text, char_matches(text, [marker](char32_t c) { return c == marker; }),
                 SplitBehavior::kMergedWithNext);
  });
}

void PatternPreTokenizer::pre_tokenize(std::vector<NormalizedText>& pieces) const {
  split_each(pieces, [&](const NormalizedText& piece) {
    Pieces matches;
    if (regex_) {
      matches = regex_->find_matches(piece);
    } else if (use_literal_) {
      matches = literal_matches(piece, literal_);
    } else if (predicate_) {
      matches = char_matches(piece, predicate_);
    } else {
      const char32_t delimiter = delimiter_;
      matches = char_matches(piece, [delimiter](char32_t c) { return c == delimiter; });
    }
    if (invert_) invert(matches);
    return split(piece, matches, behavior_);
  });
}

void SequencePreTokenizer::pre_tokenize(std::vector<NormalizedText>& pieces) const {
  for (const PreTokenizerPtr& step : steps_) step->pre_tokenize(pieces);
}

PreTokenizerPtr make_whitespace_pre_tokenizer() {
  // Rust regex: \w is Alphabetic, marks, decimal digits, connector punctuation, Join_Control;
  // \s is White_Space. Keep the matches, drop the rest.
  static const std::string word = R"(\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control})";
  auto regex = std::make_shared<Regex>("[" + word + "]+|[^" + word + R"(\p{White_Space}]+)",
                                       "pre_tokenizer Whitespace");
  return std::make_shared<PatternPreTokenizer>(std::move(regex), SplitBehavior::kRemoved, true);
}

}  // namespace tsrunner::text
