#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace tsrunner::serve {

// Small writers for the server's hot JSON answers (embeddings), where building a JSON tree per
// float would cost more than the model.

// The shortest decimal that reads back to the same float32; null for NaN and infinity.
void append_float(std::string& out, float value);
// [f, f, ...]
void append_float_array(std::string& out, const std::vector<float>& values);
// A JSON string literal; bytes that are not valid UTF-8 become U+FFFD.
void append_string(std::string& out, std::string_view text);
// Standard base64 (RFC 4648, with padding) of raw bytes: OpenAI's encoding_format "base64"
// is the little-endian float32 array encoded so.
std::string base64(const void* data, size_t size);

}  // namespace tsrunner::serve
