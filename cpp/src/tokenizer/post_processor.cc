#include "tokenizer/post_processor.h"

#include <algorithm>
#include <optional>

#include "tsrunner/errors.h"

namespace tsrunner::text {
namespace {

void keep(TokenList& tokens, size_t count, bool from_left) {
  if (tokens.size() <= count) return;
  if (from_left) {
    tokens.erase(tokens.begin(), tokens.end() - static_cast<std::ptrdiff_t>(count));
  } else {
    tokens.resize(count);
  }
}

// HF's process_offsets for byte-level tokens.
void trim_offsets(TokenList& tokens, bool add_prefix_space) {
  const char32_t space = 0x120;  // the byte-level alphabet's space
  for (size_t i = 0; i < tokens.size(); ++i) {
    Token& token = tokens[i];
    const std::u32string chars = decode_utf8(token.value).chars;
    size_t leading = 0;
    while (leading < chars.size() && (chars[leading] == space || is_white_space(chars[leading]))) {
      ++leading;
    }
    size_t trailing = 0;
    while (trailing < chars.size() && (chars[chars.size() - 1 - trailing] == space ||
                                       is_white_space(chars[chars.size() - 1 - trailing]))) {
      ++trailing;
    }
    if (leading == 0 && trailing == 0) continue;
    ByteSpan& span = token.span;
    if (leading > 0) {
      const bool is_first = i == 0 || span.begin == 0;
      if (is_first && add_prefix_space && leading == 1) leading = 0;
      span.begin = std::min(span.begin + leading, span.end);
    }
    if (trailing > 0 && span.end >= trailing) span.end = std::max(span.end - trailing, span.begin);
  }
}

}  // namespace

size_t PostProcessor::added_tokens(bool is_pair) const {
  size_t count = 0;
  for (const TemplatePiece& piece : is_pair ? pair : single) {
    if (!piece.is_sequence) count += piece.ids.size();
  }
  return count;
}

Encoding PostProcessor::apply(const TokenList& first_tokens, const TokenList* second_tokens) const {
  if (trim_offsets) {
    TokenList first = first_tokens;
    std::optional<TokenList> second;
    if (second_tokens) {
      second = *second_tokens;
      text::trim_offsets(*second, add_prefix_space);
    }
    text::trim_offsets(first, add_prefix_space);
    return apply_template(first, second ? &*second : nullptr);
  }
  return apply_template(first_tokens, second_tokens);
}

Encoding PostProcessor::apply_template(const TokenList& first, const TokenList* second) const {
  Encoding encoding;
  const size_t total = first.size() + (second ? second->size() : 0) + added_tokens(second);
  encoding.ids.reserve(total);
  auto push = [&](int64_t id, const std::string& token, int64_t type_id, ByteSpan span,
                  int sequence, int64_t word) {
    encoding.word_ids.push_back(word);
    encoding.ids.push_back(id);
    encoding.type_ids.push_back(type_id);
    encoding.attention_mask.push_back(1);
    encoding.tokens.push_back(token);
    encoding.offsets.emplace_back(span.begin, span.end);
    encoding.sequence_ids.push_back(sequence);
  };
  for (const TemplatePiece& piece : second ? pair : single) {
    if (piece.is_sequence) {
      const TokenList& tokens = piece.sequence == 0 ? first : *second;
      for (const Token& token : tokens) {
        push(token.id, token.value, piece.type_id, token.span, piece.sequence, token.word);
      }
    } else {
      for (size_t i = 0; i < piece.ids.size(); ++i) {
        push(piece.ids[i], piece.tokens[i], piece.type_id, {0, 0}, -1, -1);
      }
    }
  }
  return encoding;
}

void truncate(const Truncation& truncation, size_t added, TokenList& first, TokenList* second) {
  if (truncation.max_length == 0) return;
  if (truncation.max_length < added) {
    throw InvalidInput("max length " + std::to_string(truncation.max_length) +
                       " leaves no room for the " + std::to_string(added) + " special tokens");
  }
  const size_t budget = truncation.max_length - added;
  const size_t n_first = first.size();
  const size_t n_second = second ? second->size() : 0;
  if (n_first + n_second <= budget) return;

  using Strategy = Truncation::Strategy;
  if (!second || truncation.strategy == Strategy::kOnlyFirst) {
    if (second && n_second >= budget) {
      throw InvalidInput(
          "the text pair alone is longer than the max length; cannot truncate only "
          "the first text");
    }
    keep(first, budget - n_second, truncation.from_left);
    return;
  }
  if (truncation.strategy == Strategy::kOnlySecond) {
    if (n_first >= budget) {
      throw InvalidInput(
          "the first text alone is longer than the max length; cannot truncate "
          "only the pair");
    }
    keep(*second, budget - n_first, truncation.from_left);
    return;
  }
  // Longest first: the shorter text keeps its length if it fits in half the budget; otherwise
  // both get half (the second gets the odd token).
  size_t shorter = std::min(n_first, n_second);
  size_t longer = shorter > budget ? shorter : std::max(shorter, budget - shorter);
  if (shorter + longer > budget) {
    shorter = budget / 2;
    longer = shorter + budget % 2;
  }
  const bool first_is_shorter = n_first <= n_second;
  keep(first, first_is_shorter ? shorter : longer, truncation.from_left);
  keep(*second, first_is_shorter ? longer : shorter, truncation.from_left);
}

std::vector<TokenList> windows(const TokenList& tokens, size_t window, size_t stride) {
  if (stride >= window) {
    throw InvalidInput("the stride (" + std::to_string(stride) + ") must be smaller than the " +
                       "window (" + std::to_string(window) + " tokens)");
  }
  std::vector<TokenList> parts;
  for (size_t start = 0;; start += window - stride) {
    const size_t stop = std::min(start + window, tokens.size());
    parts.emplace_back(tokens.begin() + static_cast<std::ptrdiff_t>(start),
                       tokens.begin() + static_cast<std::ptrdiff_t>(stop));
    if (stop == tokens.size()) break;
  }
  return parts;
}

}  // namespace tsrunner::text
