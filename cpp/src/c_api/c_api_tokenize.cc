// The C API's tokenizer and encoding handles.

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "c_api/handles.h"

using tsrunner::c_api::guarded;
using tsrunner::c_api::require_pointer;
using tsrunner::c_api::text_argument;

namespace tsrunner::c_api {

std::unique_ptr<tsr_encoding> to_encoding(const Encoding& encoding) {
  auto out = std::make_unique<tsr_encoding>();
  out->ids = encoding.ids;
  out->type_ids = encoding.type_ids;
  out->attention_mask = encoding.attention_mask;
  out->word_ids = encoding.word_ids;
  out->tokens = encoding.tokens;
  out->offsets.reserve(2 * encoding.offsets.size());
  for (const auto& [begin, end] : encoding.offsets) {
    out->offsets.push_back(static_cast<int64_t>(begin));
    out->offsets.push_back(static_cast<int64_t>(end));
  }
  // Every accessor promises tsr_encoding_length() entries: refuse an encoding that breaks it
  // rather than hand out a short array.
  const size_t length = out->ids.size();
  if (out->type_ids.size() != length || out->attention_mask.size() != length ||
      out->word_ids.size() != length || out->tokens.size() != length ||
      out->offsets.size() != 2 * length) {
    throw Error("tokenizer produced an encoding whose fields differ in length");
  }
  return out;
}

}  // namespace tsrunner::c_api

namespace {

tsr_encoding* encode(const tsrunner::Tokenizer& tokenizer, const char* function, const char* text,
                     size_t text_length, const char* pair, size_t pair_length) {
  const std::string_view text_view = text_argument(text, text_length, function, "text");
  std::optional<std::string_view> pair_view;
  if (pair != nullptr) pair_view = std::string_view(pair, pair_length);
  return tsrunner::c_api::to_encoding(tokenizer.encode(text_view, pair_view)).release();
}

}  // namespace

extern "C" {

tsr_status tsr_tokenizer_load(const char* path, tsr_tokenizer** out, tsr_error** error) {
  return guarded(error, [&] {
    require_pointer(out, "tsr_tokenizer_load", "out");
    *out = nullptr;
    require_pointer(path, "tsr_tokenizer_load", "path");
    *out = new tsr_tokenizer{tsrunner::Tokenizer::from_file(path)};
  });
}

void tsr_tokenizer_free(tsr_tokenizer* tokenizer) { delete tokenizer; }

tsr_status tsr_tokenizer_encode(const tsr_tokenizer* tokenizer, const char* text,
                                size_t text_length, const char* pair, size_t pair_length,
                                tsr_encoding** out, tsr_error** error) {
  constexpr const char* function = "tsr_tokenizer_encode";
  return guarded(error, [&] {
    require_pointer(out, function, "out");
    *out = nullptr;
    require_pointer(tokenizer, function, "tokenizer");
    *out = encode(tokenizer->tokenizer, function, text, text_length, pair, pair_length);
  });
}

tsr_status tsr_runner_encode(const tsr_runner* runner, const char* text, size_t text_length,
                             const char* pair, size_t pair_length, tsr_encoding** out,
                             tsr_error** error) {
  constexpr const char* function = "tsr_runner_encode";
  return guarded(error, [&] {
    require_pointer(out, function, "out");
    *out = nullptr;
    require_pointer(runner, function, "runner");
    *out = encode(runner->runner.tokenizer(), function, text, text_length, pair, pair_length);
  });
}

void tsr_encoding_free(tsr_encoding* encoding) { delete encoding; }

size_t tsr_encoding_length(const tsr_encoding* encoding) {
  return encoding == nullptr ? 0 : encoding->ids.size();
}

const int64_t* tsr_encoding_ids(const tsr_encoding* encoding) {
  return encoding == nullptr ? nullptr : encoding->ids.data();
}

const int64_t* tsr_encoding_type_ids(const tsr_encoding* encoding) {
  return encoding == nullptr ? nullptr : encoding->type_ids.data();
}

const int64_t* tsr_encoding_attention_mask(const tsr_encoding* encoding) {
  return encoding == nullptr ? nullptr : encoding->attention_mask.data();
}

const int64_t* tsr_encoding_offsets(const tsr_encoding* encoding) {
  return encoding == nullptr ? nullptr : encoding->offsets.data();
}

const int64_t* tsr_encoding_word_ids(const tsr_encoding* encoding) {
  return encoding == nullptr ? nullptr : encoding->word_ids.data();
}

const char* tsr_encoding_token(const tsr_encoding* encoding, size_t index) {
  if (encoding == nullptr || index >= encoding->tokens.size()) return nullptr;
  return encoding->tokens[index].c_str();
}

}  // extern "C"
