// Arbitrary bytes as tsrunner/digest.json: a DigestRecord with a well-formed SHA-256 or a
// LoadError, nothing else.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "digest_record.h"
#include "tsrunner/errors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const tsrunner::detail::DigestRecord record = tsrunner::detail::parse_digest_record(text);
    if (record.algorithm != "sha256" || !tsrunner::detail::is_sha256_hex(record.content_digest)) {
      std::abort();  // accepted something it should have refused
    }
  } catch (const tsrunner::LoadError&) {
  }
  return 0;
}
