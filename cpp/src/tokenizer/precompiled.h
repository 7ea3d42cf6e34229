#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/normalizers.h"

namespace tsrunner::text {

// SentencePiece's precompiled normalization (the "precompiled_charsmap" XLM-R, T5, ALBERT and
// DeBERTa-v2 ship): a double-array trie from UTF-8 strings to their replacements, applied as
// HF tokenizers applies it: each grapheme cluster shorter than 6 bytes is looked up whole,
// otherwise (or when that fails) each of its characters is.
class PrecompiledNormalizer : public Normalizer {
 public:
  // `charsmap` is the decoded blob: a little-endian u32 trie size in bytes, the trie's units,
  // then the NUL-separated replacement strings. Throws LoadError when it is malformed.
  explicit PrecompiledNormalizer(std::string charsmap);
  NormalizedText normalize(const NormalizedText& input) const override;

  // The replacement of the shortest prefix of `key` found in the trie (HF's transform).
  std::optional<std::string_view> lookup(std::string_view key) const;

 private:
  std::vector<uint32_t> trie_;
  std::string replacements_;
};

// Standard base64 (tokenizer.json stores the charsmap that way); nullopt when malformed.
std::optional<std::string> decode_base64(std::string_view text);

}  // namespace tsrunner::text
