#include "tokenizer/text_ops.h"

#include <algorithm>

namespace tsrunner::text {

NormalizedText transform(const NormalizedText& text, const std::vector<CharChange>& changes,
                         size_t initial_offset) {
  NormalizedText out;
  out.origin = text.origin;
  out.chars.reserve(changes.size());
  out.spans.reserve(changes.size());
  size_t old = initial_offset;  // the next old character to replace
  for (const CharChange& change : changes) {
    ByteSpan span;
    if (change.change > 0) {
      // Inserted: the span of the character before (HF: the previous byte's alignment).
      if (old >= 1 && old - 1 < text.size()) {
        span = text.spans[old - 1];
      } else {
        span = {text.origin, text.origin};
      }
    } else {
      span = old < text.size() ? text.spans[old] : ByteSpan{text.origin, text.origin};
      old += 1 + static_cast<size_t>(-change.change);
    }
    out.push_back(change.c, span);
  }
  return out;
}

NormalizedText map_each(const NormalizedText& text, void (*append)(std::u32string&, char32_t)) {
  NormalizedText mapped;
  mapped.origin = text.origin;
  mapped.chars.reserve(text.size());
  mapped.spans.reserve(text.size());
  std::u32string pieces;
  for (size_t i = 0; i < text.size(); ++i) {
    pieces.clear();
    append(pieces, text.chars[i]);
    for (char32_t piece : pieces) mapped.push_back(piece, text.spans[i]);
  }
  return mapped;
}

Pieces char_matches(const NormalizedText& text, const std::function<bool(char32_t)>& predicate) {
  Pieces pieces;
  size_t last = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (!predicate(text.chars[i])) continue;
    if (last < i) pieces.push_back({last, i, false});
    pieces.push_back({i, i + 1, true});
    last = i + 1;
  }
  if (last < text.size()) pieces.push_back({last, text.size(), false});
  return pieces;
}

Pieces literal_matches(const NormalizedText& text, std::u32string_view literal) {
  Pieces pieces;
  if (literal.empty()) {
    pieces.push_back({0, text.size(), false});
    return pieces;
  }
  const std::u32string_view chars(text.chars);
  size_t last = 0;
  for (size_t at = chars.find(literal); at != std::u32string_view::npos;
       at = chars.find(literal, at + literal.size())) {
    if (last < at) pieces.push_back({last, at, false});
    pieces.push_back({at, at + literal.size(), true});
    last = at + literal.size();
  }
  if (last < text.size()) pieces.push_back({last, text.size(), false});
  return pieces;
}

void invert(Pieces& pieces) {
  for (Piece& piece : pieces) piece.is_match = !piece.is_match;
}

std::vector<NormalizedText> split(const NormalizedText& text, const Pieces& matches,
                                  SplitBehavior behavior) {
  // (piece, keep) pairs, folded as HF folds them.
  Pieces kept;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      for (const Piece& piece : matches) {
        if (!piece.is_match) kept.push_back(piece);
      }
      break;
    case SplitBehavior::kIsolated:
      kept = matches;
      break;
    case SplitBehavior::kContiguous: {
      bool previous = false;
      for (const Piece& piece : matches) {
        if (piece.is_match == previous && !kept.empty()) {
          kept.back().end = piece.end;
        } else {
          kept.push_back(piece);
        }
        previous = piece.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool previous = false;
      for (const Piece& piece : matches) {
        if (piece.is_match && !previous && !kept.empty()) {
          kept.back().end = piece.end;
        } else {
          kept.push_back(piece);
        }
        previous = piece.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous = false;
      for (auto it = matches.rbegin(); it != matches.rend(); ++it) {
        if (it->is_match && !previous && !kept.empty()) {
          kept.back().begin = it->begin;
        } else {
          kept.push_back(*it);
        }
        previous = it->is_match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
    }
  }
  std::vector<NormalizedText> parts;
  parts.reserve(kept.size());
  for (const Piece& piece : kept) {
    if (piece.end > piece.begin) parts.push_back(text.slice(piece.begin, piece.end));
  }
  return parts;
}

NormalizedText replace(const NormalizedText& text, const Pieces& matches,
                       std::u32string_view content) {
  // One transform over the whole text: kept characters replace themselves, a match's
  // characters are removed and the content inserted after them (HF passes the match's length
  // as initial_offset, so the content takes the span of the match's last character).
  std::vector<CharChange> changes;
  changes.reserve(text.size());
  NormalizedText out;
  out.origin = text.origin;
  for (const Piece& piece : matches) {
    if (!piece.is_match) {
      for (size_t i = piece.begin; i < piece.end; ++i) out.push_back(text.chars[i], text.spans[i]);
      continue;
    }
    for (char32_t c : content) {
      const ByteSpan span =
          piece.end > 0 ? text.spans[piece.end - 1] : ByteSpan{text.origin, text.origin};
      out.push_back(c, span);
    }
  }
  return out;
}

NormalizedText prepend(const NormalizedText& text, std::u32string_view prefix) {
  if (text.empty() || prefix.empty()) return text;
  NormalizedText out;
  out.origin = text.origin;
  out.chars.reserve(text.size() + prefix.size());
  out.spans.reserve(text.size() + prefix.size());
  // HF: the prefix's first character replaces the first one (takes its span), the rest and the
  // old first character are inserted after it (share that span).
  for (char32_t c : prefix) out.push_back(c, text.spans[0]);
  out.chars.append(text.chars);
  out.spans.insert(out.spans.end(), text.spans.begin(), text.spans.end());
  return out;
}

}  // namespace tsrunner::text
