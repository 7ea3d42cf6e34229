#include "tokenizer/precompiled.h"

#include <utf8proc.h>

#include <cstring>

#include "tokenizer/text_ops.h"
#include "tsrunner/errors.h"

namespace tsrunner::text {
namespace {

// Darts-clone's unit layout.
bool has_leaf(uint32_t unit) { return ((unit >> 8) & 1) == 1; }
uint32_t value(uint32_t unit) { return unit & ((1U << 31) - 1); }
uint32_t label(uint32_t unit) { return unit & ((1U << 31) | 0xFF); }
uint32_t offset(uint32_t unit) { return (unit >> 10) << ((unit & (1U << 9)) >> 6); }

// HF's `replace` helper: the new characters, then the change in length charged to the last
// ones (insertions) or to the last character so far (removals).
void replace_with(std::vector<CharChange>& changes, size_t old_count,
                  std::string_view replacement) {
  const NormalizedText decoded = decode_utf8(replacement);
  for (char32_t c : decoded.chars) changes.push_back({c, 0});
  const long diff = static_cast<long>(decoded.size()) - static_cast<long>(old_count);
  if (diff > 0) {
    for (long k = 0; k < diff; ++k) changes[changes.size() - 1 - static_cast<size_t>(k)].change = 1;
  } else if (diff < 0 && !changes.empty()) {
    changes.back().change += static_cast<int>(diff);
  }
}

}  // namespace

std::optional<std::string> decode_base64(std::string_view text) {
  auto sextet = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(text.size() / 4 * 3);
  uint32_t buffer = 0;
  int bits = 0;
  size_t padding = 0;
  for (char c : text) {
    if (c == '=') {
      ++padding;
      continue;
    }
    if (padding > 0) return std::nullopt;  // data after padding
    const int v = sextet(c);
    if (v < 0) return std::nullopt;
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xFF));
    }
  }
  if (padding > 2) return std::nullopt;
  return out;
}

PrecompiledNormalizer::PrecompiledNormalizer(std::string charsmap) {
  auto fail = [] { throw LoadError("tokenizer.json: precompiled_charsmap is malformed"); };
  if (charsmap.size() < 4) fail();
  uint32_t trie_bytes = 0;
  for (int i = 3; i >= 0; --i)
    trie_bytes = (trie_bytes << 8) | static_cast<unsigned char>(charsmap[i]);
  if (trie_bytes % 4 != 0 || trie_bytes > charsmap.size() - 4 || trie_bytes == 0) fail();
  trie_.resize(trie_bytes / 4);
  for (size_t i = 0; i < trie_.size(); ++i) {
    uint32_t unit = 0;
    for (int b = 3; b >= 0; --b) {
      unit = (unit << 8) | static_cast<unsigned char>(charsmap[4 + i * 4 + static_cast<size_t>(b)]);
    }
    trie_[i] = unit;
  }
  replacements_ = charsmap.substr(4 + trie_bytes);
  try {
    decode_utf8(replacements_);
  } catch (const InvalidInput&) {
    fail();
  }
}

std::optional<std::string_view> PrecompiledNormalizer::lookup(std::string_view key) const {
  size_t node = offset(trie_[0]);
  for (char byte : key) {
    const auto c = static_cast<unsigned char>(byte);
    if (c == 0) break;
    node ^= c;
    if (node >= trie_.size()) return std::nullopt;
    const uint32_t unit = trie_[node];
    if (label(unit) != c) return std::nullopt;
    node ^= offset(unit);
    if (node >= trie_.size()) return std::nullopt;
    if (has_leaf(unit)) {
      // The first (shortest) match wins, as in HF.
      const size_t begin = value(trie_[node]);
      if (begin >= replacements_.size()) return std::nullopt;
      const size_t end = replacements_.find('\0', begin);
      return std::string_view(replacements_)
          .substr(begin, (end == std::string::npos ? replacements_.size() : end) - begin);
    }
  }
  return std::nullopt;
}

NormalizedText PrecompiledNormalizer::normalize(const NormalizedText& input) const {
  std::vector<CharChange> changes;
  changes.reserve(input.size());
  bool modified = false;
  std::string grapheme;
  std::string one;
  size_t begin = 0;
  utf8proc_int32_t state = 0;
  while (begin < input.size()) {
    // The extended grapheme cluster starting at `begin`.
    size_t end = begin + 1;
    while (end < input.size() && !utf8proc_grapheme_break_stateful(
                                     static_cast<utf8proc_int32_t>(input.chars[end - 1]),
                                     static_cast<utf8proc_int32_t>(input.chars[end]), &state)) {
      ++end;
    }
    grapheme.clear();
    for (size_t i = begin; i < end; ++i) append_utf8(grapheme, input.chars[i]);
    std::optional<std::string_view> whole;
    if (grapheme.size() < 6) whole = lookup(grapheme);
    if (whole) {
      modified = true;
      replace_with(changes, end - begin, *whole);
    } else {
      for (size_t i = begin; i < end; ++i) {
        one.clear();
        append_utf8(one, input.chars[i]);
        if (const auto replacement = lookup(one)) {
          modified = true;
          replace_with(changes, 1, *replacement);
        } else {
          changes.push_back({input.chars[i], 0});
        }
      }
    }
    begin = end;
  }
  if (!modified) return input;
  return transform(input, changes);
}

}  // namespace tsrunner::text
