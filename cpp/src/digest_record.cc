#include "digest_record.h"

#include <nlohmann/json.hpp>

#include "tsrunner/errors.h"
#include "tsrunner/manifest.h"

namespace tsrunner::detail {

bool is_sha256_hex(const std::string& text) {
  if (text.size() != 64) return false;
  for (const char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

DigestRecord parse_digest_record(const std::string& json_text) {
  const std::string where = std::string(kDigestRecord);
  const auto root = nlohmann::json::parse(json_text, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) throw LoadError(where + " is not a JSON object");
  DigestRecord record;
  const auto algorithm = root.find("algorithm");
  if (algorithm == root.end() || !algorithm->is_string()) {
    throw LoadError(where + " has no \"algorithm\" string");
  }
  record.algorithm = algorithm->get<std::string>();
  if (record.algorithm != "sha256") {
    throw LoadError(where + " uses the digest algorithm \"" + record.algorithm.substr(0, 40) +
                    "\" but this tsrunner knows only sha256: upgrade tsrunner");
  }
  const auto digest = root.find("content_digest");
  if (digest == root.end() || !digest->is_string() || !is_sha256_hex(digest->get<std::string>())) {
    throw LoadError(where + " has no \"content_digest\" of 64 lowercase hex digits");
  }
  record.content_digest = digest->get<std::string>();
  return record;
}

}  // namespace tsrunner::detail
