#include "tokenizer/unicode.h"

#include <utf8proc.h>

#include <algorithm>
#include <iterator>

#include "tsrunner/errors.h"

namespace tsrunner::text {

NormalizedText NormalizedText::slice(size_t begin, size_t end) const {
  NormalizedText part;
  part.chars.assign(chars, begin, end - begin);
  part.spans.assign(spans.begin() + static_cast<std::ptrdiff_t>(begin),
                    spans.begin() + static_cast<std::ptrdiff_t>(end));
  part.origin = begin < end ? spans[begin].begin : origin;
  return part;
}

NormalizedText decode_utf8(std::string_view text) {
  NormalizedText decoded;
  decoded.chars.reserve(text.size());
  decoded.spans.reserve(text.size());
  const auto* bytes = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  size_t position = 0;
  while (position < text.size()) {
    utf8proc_int32_t code_point = 0;
    const utf8proc_ssize_t length = utf8proc_iterate(
        bytes + position, static_cast<utf8proc_ssize_t>(text.size() - position), &code_point);
    if (length <= 0) {
      throw InvalidInput("text is not valid UTF-8 (malformed byte sequence at byte " +
                         std::to_string(position) + ")");
    }
    const size_t next = position + static_cast<size_t>(length);
    decoded.push_back(static_cast<char32_t>(code_point), {position, next});
    position = next;
  }
  return decoded;
}

void append_utf8(std::string& out, char32_t c) {
  utf8proc_uint8_t buffer[4];
  const utf8proc_ssize_t length = utf8proc_encode_char(static_cast<utf8proc_int32_t>(c), buffer);
  out.append(reinterpret_cast<const char*>(buffer), static_cast<size_t>(length));
}

std::string to_utf8(std::u32string_view chars) {
  std::string out;
  out.reserve(chars.size());
  for (char32_t c : chars) append_utf8(out, c);
  return out;
}

namespace {

utf8proc_category_t category(char32_t c) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(c));
}

struct CodePointRange {
  char32_t first;
  char32_t last;
};

struct CodePointMapping {
  char32_t from;
  char32_t to;
};

#include "tokenizer/hf_unicode_tables.inc"

template <size_t N>
bool in_table(const CodePointRange (&table)[N], char32_t c) {
  const auto* it =
      std::upper_bound(std::begin(table), std::end(table), c,
                       [](char32_t v, const CodePointRange& r) { return v < r.first; });
  return it != std::begin(table) && c <= (it - 1)->last;
}

}  // namespace

bool is_white_space(char32_t c) {
  // White_Space is exactly the separators (Zs, Zl, Zp) plus these C0/C1 controls.
  if ((c >= 0x09 && c <= 0x0D) || c == 0x85) return true;
  const utf8proc_category_t cat = category(c);
  return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}

// The classes below come from HF's own behaviour (hf_unicode_tables.inc), not from utf8proc:
// HF's Rust crates carry Unicode tables of several older versions.
bool is_other_category(char32_t c) { return in_table(kHf_other, c); }
bool is_punctuation(char32_t c) { return in_table(kHf_punctuation, c); }
bool is_nonspacing_mark(char32_t c) { return in_table(kHf_nonspacing_mark, c); }
bool is_numeric(char32_t c) { return in_table(kHf_numeric, c); }
bool is_mark(char32_t c) { return in_table(kHf_combining_mark, c); }
bool has_decomposition(char32_t c, bool compat) {
  return compat ? in_table(kHf_decomposes_compat, c) : in_table(kHf_decomposes, c);
}

int combining_class(char32_t c) {
  const int utf8proc_class =
      utf8proc_get_property(static_cast<utf8proc_int32_t>(c))->combining_class;
  return utf8proc_class != 0 && in_table(kHf_non_starter, c) ? utf8proc_class : 0;
}

bool is_cjk_ideograph(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

void append_lowercase(std::u32string& out, char32_t c) {
  // Rust's char::to_lowercase as HF runs it; its one unconditional mapping longer than one
  // character (SpecialCasing.txt) is not in the table.
  if (c == 0x0130) {
    out.push_back(U'i');
    out.push_back(0x0307);
    return;
  }
  const auto* it =
      std::lower_bound(std::begin(kHf_lowercase), std::end(kHf_lowercase), c,
                       [](const CodePointMapping& m, char32_t v) { return m.from < v; });
  out.push_back(it != std::end(kHf_lowercase) && it->from == c ? it->to : c);
}

}  // namespace tsrunner::text
