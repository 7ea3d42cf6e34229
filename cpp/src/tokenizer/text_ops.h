#pragma once

#include <cstddef>
#include <functional>
#include <string_view>
#include <vector>

#include "tokenizer/unicode.h"

namespace tsrunner::text {

// One character of a transformed text and how it relates to the text before (HF's
// NormalizedString::transform): 0 replaces the next old character, 1 is inserted (it shares
// the span of the character before it), -N replaces the next old character and removes the N
// after it.
struct CharChange {
  char32_t c;
  int change;
};

// Each character replaced by what `append` writes for it (one or more characters), every one
// of them keeping the original character's span (HF: the first replaces it, the rest are
// inserted after it).
NormalizedText map_each(const NormalizedText& text, void (*append)(std::u32string&, char32_t));

// HF's transform: the new text, every character's span derived from the old spans exactly as
// HF derives alignments. `initial_offset` old characters are removed before the first change.
NormalizedText transform(const NormalizedText& text, const std::vector<CharChange>& changes,
                         size_t initial_offset = 0);

// A stretch [begin, end) of characters that a pattern matched (or did not).
struct Piece {
  size_t begin = 0;
  size_t end = 0;
  bool is_match = false;
};
using Pieces = std::vector<Piece>;

// What a split does with the matches (HF's SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Matches of a character predicate: every matching character is a match of its own.
Pieces char_matches(const NormalizedText& text, const std::function<bool(char32_t)>& predicate);
// Non-overlapping occurrences of a literal string, leftmost first.
Pieces literal_matches(const NormalizedText& text, std::u32string_view literal);
void invert(Pieces& pieces);

// The parts of `text` a split by `matches` makes; empty parts are dropped, as HF drops them.
std::vector<NormalizedText> split(const NormalizedText& text, const Pieces& matches,
                                  SplitBehavior behavior);

// HF's NormalizedString::replace: every match replaced by `content`.
NormalizedText replace(const NormalizedText& text, const Pieces& matches,
                       std::u32string_view content);
// HF's NormalizedString::prepend (no-op on an empty text).
NormalizedText prepend(const NormalizedText& text, std::u32string_view prefix);

}  // namespace tsrunner::text
