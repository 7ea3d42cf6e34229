#pragma once

#include <string>

namespace tsrunner::detail {

// The digest record ("tsrunner/digest.json") the exporter appends to every archive:
//   {"algorithm": "sha256", "content_digest": "<64 lowercase hex digits>", ...}
// Parsing it needs no LibTorch, so the fuzz targets link this file alone.
struct DigestRecord {
  std::string algorithm;
  std::string content_digest;
};

// Throws LoadError naming the problem when `json_text` is not a digest record this build reads.
DigestRecord parse_digest_record(const std::string& json_text);

// True for exactly 64 lowercase hexadecimal digits (how SHA-256 digests are written).
bool is_sha256_hex(const std::string& text);

}  // namespace tsrunner::detail
