#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace tsrunner::text {

// Where a character of a (normalized) text came from: bytes [begin, end) of the original.
struct ByteSpan {
  size_t begin = 0;
  size_t end = 0;
};

// Text as code points, each remembering the original bytes it came from. Normalization may
// add, drop or replace characters; the spans keep offsets pointing into the original text.
struct NormalizedText {
  std::u32string chars;
  std::vector<ByteSpan> spans;
  // Where this piece starts in the original text (HF's original_shift): Metaspace's
  // prepend_scheme "first" asks whether a piece is the start of its text.
  size_t origin = 0;

  bool empty() const { return chars.empty(); }
  size_t size() const { return chars.size(); }
  void push_back(char32_t c, ByteSpan span) {
    chars.push_back(c);
    spans.push_back(span);
  }
  NormalizedText slice(size_t begin, size_t end) const;
};

// Decodes UTF-8; throws InvalidInput naming the byte offset of the first malformed sequence.
NormalizedText decode_utf8(std::string_view text);
void append_utf8(std::string& out, char32_t c);
std::string to_utf8(std::u32string_view chars);

// Character classes, from utf8proc's Unicode tables, with the meaning HF `tokenizers` gives
// them (Rust's char::is_whitespace and the unicode_categories crate).
bool is_white_space(char32_t c);  // the White_Space property (Rust char::is_whitespace)
// Cc, Cf, Co, Cs: the unicode_categories crate's is_other(), which (unlike its name's
// Unicode definition) leaves unassigned code points (Cn) out; HF keeps them.
bool is_other_category(char32_t c);
bool is_punctuation(char32_t c);      // P*, or ASCII punctuation
bool is_nonspacing_mark(char32_t c);  // Mn
// BERT's "Chinese character" blocks (CJK Unified Ideographs and extensions, compatibility
// ideographs): a definition from the original BERT code, not a Unicode property.
bool is_cjk_ideograph(char32_t c);
bool is_numeric(char32_t c);  // Nd, Nl, No (Rust char::is_numeric)
bool is_mark(char32_t c);     // Mn, Mc, Me
// Whether NFD (or NFKD with `compat`) changes `c` in HF's (older) Unicode tables.
bool has_decomposition(char32_t c, bool compat);
// The canonical combining class in HF's (Unicode 9) tables: utf8proc's for the non-starters
// those tables know, 0 for marks assigned since.
int combining_class(char32_t c);

// Full lowercase mapping without context (Rust char::to_lowercase), appended to `out`.
void append_lowercase(std::u32string& out, char32_t c);

}  // namespace tsrunner::text
