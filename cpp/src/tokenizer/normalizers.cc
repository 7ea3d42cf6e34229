#include "tokenizer/normalizers.h"

#include <utf8proc.h>

#include <algorithm>
#include <optional>

#include "tokenizer/text_ops.h"

namespace tsrunner::text {
namespace {

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

// The primary composite of `first` and `second`, or 0. Composites that HF's (older) tables do
// not decompose are not composed either.
char32_t compose_pair(char32_t first, char32_t second) {
  if (second < 0x300) return 0;  // nothing below the combining diacritics is a second element
  utf8proc_int32_t pair[2] = {static_cast<utf8proc_int32_t>(first),
                              static_cast<utf8proc_int32_t>(second)};
  const utf8proc_ssize_t length = utf8proc_normalize_utf32(
      pair, 2, static_cast<utf8proc_option_t>(UTF8PROC_COMPOSE | UTF8PROC_STABLE));
  if (length != 1) return 0;
  const auto composed = static_cast<char32_t>(pair[0]);
  return has_decomposition(composed, false) ? composed : 0;
}

// HF's NFD/NFKD changes (unicode-normalization-alignments, which NormalizedString::nfd runs):
// the first character of a decomposition replaces the original (0), the others are inserted
// (1); then each run of non-starters is stably sorted by combining class, and the changes move
// with their characters, so a reordered mark takes the span of the place it moves to.
std::vector<CharChange> decompose_all(std::u32string_view chars, bool compat) {
  std::vector<CharChange> out;
  out.reserve(chars.size());
  std::u32string pieces;
  size_t run_begin = 0;  // where the current run of non-starters begins
  auto sort_run = [&] {  // insertion sort: stable, and runs are a few marks at most
    for (size_t i = run_begin + 1; i < out.size(); ++i) {
      for (size_t j = i; j > run_begin && combining_class(out[j - 1].c) > combining_class(out[j].c);
           --j) {
        std::swap(out[j - 1], out[j]);
      }
    }
  };
  for (char32_t c : chars) {
    pieces.clear();
    decompose(pieces, c, compat);
    for (size_t i = 0; i < pieces.size(); ++i) {
      if (combining_class(pieces[i]) == 0) {
        sort_run();
        run_begin = out.size() + 1;
      }
      out.push_back({pieces[i], i == 0 ? 0 : 1});
    }
  }
  sort_run();
  return out;
}

// HF's NFC/NFKC changes: canonical composition of the decomposed stream, where a composite
// carries the sum of its parts' changes less one per part absorbed, and the marks that stay
// (blocked or not composable) keep their own changes and follow their starter.
std::vector<CharChange> recompose(const std::vector<CharChange>& decomposed) {
  std::vector<CharChange> out;
  out.reserve(decomposed.size());
  std::optional<CharChange> starter;
  std::vector<CharChange> kept_marks;
  int last_kept_class = -1;  // none kept since the starter
  auto emit_starter = [&] {
    out.push_back(*starter);
    out.insert(out.end(), kept_marks.begin(), kept_marks.end());
    kept_marks.clear();
    last_kept_class = -1;
  };
  for (const CharChange& item : decomposed) {
    const int item_class = combining_class(item.c);
    if (!starter) {
      if (item_class == 0) {
        starter = item;
      } else {
        out.push_back(item);  // a mark before any starter
      }
      continue;
    }
    const bool blocked = last_kept_class >= 0 && last_kept_class >= item_class;
    const char32_t composed = blocked ? 0 : compose_pair(starter->c, item.c);
    if (composed != 0) {
      starter = CharChange{composed, starter->change + item.change - 1};
    } else if (item_class == 0) {
      emit_starter();
      starter = item;
    } else {
      kept_marks.push_back(item);
      last_kept_class = item_class;
    }
  }
  if (starter) emit_starter();
  return out;
}

}  // namespace

NormalizedText UnicodeNormalizer::normalize(const NormalizedText& input) const {
  const bool compat = form_ == Form::kNFKC || form_ == Form::kNFKD;
  const bool compose = form_ == Form::kNFC || form_ == Form::kNFKC;
  std::vector<CharChange> changes = decompose_all(input.chars, compat);
  if (compose) changes = recompose(changes);
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
