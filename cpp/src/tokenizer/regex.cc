#include "tokenizer/regex.h"

#include <oniguruma.h>

#include <mutex>

#include "tsrunner/errors.h"

namespace tsrunner::text {
namespace {

void initialize_oniguruma() {
  static std::once_flag once;
  std::call_once(once, [] {
    OnigEncoding encodings[] = {ONIG_ENCODING_UTF8};
    onig_initialize(encodings, 1);
  });
}

std::string error_text(int code, OnigErrorInfo* info) {
  OnigUChar message[ONIG_MAX_ERROR_MESSAGE_LEN];
  if (info) {
    onig_error_code_to_str(message, code, info);
  } else {
    onig_error_code_to_str(message, code);
  }
  return reinterpret_cast<const char*>(message);
}

}  // namespace

struct Regex::Compiled {
  OnigRegex regex = nullptr;
  ~Compiled() {
    if (regex) onig_free(regex);
  }
};

Regex::Regex(const std::string& pattern, const std::string& where)
    : compiled_(std::make_unique<Compiled>()) {
  initialize_oniguruma();
  OnigErrorInfo info;
  const auto* begin = reinterpret_cast<const OnigUChar*>(pattern.data());
  const int code = onig_new(&compiled_->regex, begin, begin + pattern.size(), ONIG_OPTION_NONE,
                            ONIG_ENCODING_UTF8, ONIG_SYNTAX_DEFAULT, &info);
  if (code != ONIG_NORMAL) {
    compiled_->regex = nullptr;
    throw LoadError("tokenizer.json: " + where + ": the regular expression \"" + pattern +
                    "\" does not compile: " + error_text(code, &info));
  }
}

Regex::~Regex() = default;

Pieces Regex::find_matches(const NormalizedText& text) const {
  Pieces pieces;
  if (text.empty()) {
    pieces.push_back({0, 0, false});
    return pieces;
  }
  // UTF-8 for the engine, and the character each byte offset starts.
  std::string utf8;
  utf8.reserve(text.size());
  std::vector<size_t> char_at;
  char_at.reserve(text.size() + 1);
  for (size_t i = 0; i < text.size(); ++i) {
    append_utf8(utf8, text.chars[i]);
    char_at.resize(utf8.size(), i);
  }
  char_at.push_back(text.size());
  const auto* str = reinterpret_cast<const OnigUChar*>(utf8.data());
  const OnigUChar* end = str + utf8.size();

  OnigRegion* region = onig_region_new();
  size_t search_from = 0;  // bytes
  size_t previous = 0;     // end of the last match, bytes
  bool matched_before = false;
  while (search_from <= utf8.size()) {
    onig_region_clear(region);
    const int found =
        onig_search(compiled_->regex, str, end, str + search_from, end, region, ONIG_OPTION_NONE);
    if (found < 0) break;
    const auto match_begin = static_cast<size_t>(region->beg[0]);
    const auto match_end = static_cast<size_t>(region->end[0]);
    if (match_begin == match_end && matched_before && previous == match_end) {
      // No empty match right after the last one: step over one character.
      if (search_from >= utf8.size()) break;
      search_from = search_from + 1;
      while (search_from < utf8.size() &&
             (static_cast<unsigned char>(utf8[search_from]) & 0xC0) == 0x80) {
        ++search_from;
      }
      continue;
    }
    if (previous != match_begin) pieces.push_back({char_at[previous], char_at[match_begin], false});
    pieces.push_back({char_at[match_begin], char_at[match_end], true});
    previous = match_end;
    matched_before = true;
    search_from = match_end;
    if (match_begin == match_end && search_from >= utf8.size()) break;
  }
  onig_region_free(region, 1);
  if (previous != utf8.size()) pieces.push_back({char_at[previous], text.size(), false});
  return pieces;
}

}  // namespace tsrunner::text
