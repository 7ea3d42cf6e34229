#include "tokenizer/decoders.h"

#include "tokenizer/pre_tokenizers.h"
#include "tokenizer/text_ops.h"

namespace tsrunner::text {
namespace {

// The length of the valid UTF-8 sequence at `bytes[i]`, or 0 with `invalid` set to the length
// of its maximal invalid prefix (at least 1).
size_t sequence_length(std::string_view bytes, size_t i, size_t& invalid) {
  const auto at = [&](size_t k) { return static_cast<unsigned char>(bytes[k]); };
  const unsigned char lead = at(i);
  invalid = 1;
  if (lead < 0x80) return 1;
  size_t length = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  for (size_t k = 1; k < length; ++k) {
    if (i + k >= bytes.size()) return 0;
    const unsigned char c = at(i + k);
    const unsigned char lo = k == 1 ? low : 0x80;
    const unsigned char hi = k == 1 ? high : 0xBF;
    if (c < lo || c > hi) return 0;
    invalid = k + 1;
  }
  return length;
}

std::u32string to_u32(std::string_view utf8) { return decode_utf8(utf8).chars; }

// Every occurrence of `from` (not empty) replaced by `to`, left to right (Rust's str::replace).
void replace_all(std::string& text, std::string_view from, std::string_view to) {
  std::string replaced;
  size_t last = 0;
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, last)) {
    replaced.append(text, last, at - last);
    replaced += to;
    last = at + from.size();
  }
  replaced.append(text, last, std::string::npos);
  text = std::move(replaced);
}

}  // namespace

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    size_t invalid = 1;
    const size_t length = sequence_length(bytes, i, invalid);
    if (length > 0) {
      out.append(bytes.substr(i, length));
      i += length;
    } else {
      out += "\xEF\xBF\xBD";
      i += invalid;
    }
  }
  return out;
}

bool is_valid_utf8(std::string_view bytes) {
  for (size_t i = 0; i < bytes.size();) {
    size_t invalid = 1;
    const size_t length = sequence_length(bytes, i, invalid);
    if (length == 0) return false;
    i += length;
  }
  return true;
}

void ByteLevelDecoder::decode_chain(std::vector<std::string>& tokens) const {
  const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::get();
  std::string bytes;
  for (const std::string& token : tokens) {
    const std::u32string chars = to_u32(token);
    std::string mapped;
    bool all_mapped = true;
    for (char32_t c : chars) {
      auto it = alphabet.byte_of_char.find(c);
      if (it == alphabet.byte_of_char.end()) {
        all_mapped = false;
        break;
      }
      mapped.push_back(static_cast<char>(it->second));
    }
    bytes += all_mapped ? mapped : token;
  }
  tokens.assign(1, utf8_lossy(bytes));
}

void WordPieceDecoder::decode_chain(std::vector<std::string>& tokens) const {
  static const std::pair<const char*, const char*> kCleanup[] = {
      {" .", "."},   {" ?", "?"},     {" !", "!"},    {" ,", ","},
      {" ' ", "'"},  {" n't", "n't"}, {" 'm", "'m"},  {" do not", " don't"},
      {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::string& token = tokens[i];
    if (i != 0) {
      if (token.compare(0, prefix_.size(), prefix_) == 0) {
        token.erase(0, prefix_.size());
      } else {
        token.insert(0, " ");
      }
    }
    if (cleanup_) {
      for (const auto& [from, to] : kCleanup) replace_all(token, from, to);
    }
  }
}

void MetaspaceDecoder::decode_chain(std::vector<std::string>& tokens) const {
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::string decoded;
    for (char32_t c : to_u32(tokens[i])) {
      if (c != replacement_) {
        append_utf8(decoded, c);
      } else if (i != 0 || !prepends_) {
        decoded += ' ';
      }
    }
    tokens[i] = std::move(decoded);
  }
}

void BPEDecoder::decode_chain(std::vector<std::string>& tokens) const {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (suffix_.empty()) continue;
    replace_all(tokens[i], suffix_, i + 1 == tokens.size() ? "" : " ");
  }
}

void ReplaceDecoder::decode_chain(std::vector<std::string>& tokens) const {
  for (std::string& token : tokens) {
    const NormalizedText text = decode_utf8(token);
    const Pieces matches = regex_ ? regex_->find_matches(text) : literal_matches(text, literal_);
    token = to_utf8(replace(text, matches, content_).chars);
  }
}

void ByteFallbackDecoder::decode_chain(std::vector<std::string>& tokens) const {
  std::vector<std::string> out;
  std::string bytes;
  size_t byte_count = 0;
  auto flush = [&] {
    if (byte_count == 0) return;
    if (is_valid_utf8(bytes)) {
      out.push_back(bytes);
    } else {
      for (size_t k = 0; k < byte_count; ++k) out.emplace_back("\xEF\xBF\xBD");
    }
    bytes.clear();
    byte_count = 0;
  };
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (std::string& token : tokens) {
    if (token.size() == 6 && token.compare(0, 3, "<0x") == 0 && token[5] == '>' &&
        hex(token[3]) >= 0 && hex(token[4]) >= 0) {
      bytes.push_back(static_cast<char>(hex(token[3]) * 16 + hex(token[4])));
      ++byte_count;
      continue;
    }
    flush();
    out.push_back(std::move(token));
  }
  flush();
  tokens = std::move(out);
}

void FuseDecoder::decode_chain(std::vector<std::string>& tokens) const {
  std::string joined;
  for (const std::string& token : tokens) joined += token;
  tokens.assign(1, joined);
}

void StripDecoder::decode_chain(std::vector<std::string>& tokens) const {
  for (std::string& token : tokens) {
    const std::u32string chars = to_u32(token);
    size_t begin = 0;
    while (begin < start_ && begin < chars.size() && chars[begin] == content_) ++begin;
    size_t end = chars.size();
    for (size_t k = 0; k < stop_ && end > 0 && chars[end - 1] == content_; ++k) --end;
    token = end > begin ? to_utf8(std::u32string_view(chars).substr(begin, end - begin)) : "";
  }
}

void SequenceDecoder::decode_chain(std::vector<std::string>& tokens) const {
  for (const DecoderPtr& step : steps_) step->decode_chain(tokens);
}

}  // namespace tsrunner::text
