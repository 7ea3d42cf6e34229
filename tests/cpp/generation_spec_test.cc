// The manifest's "generation" record as the generator reads it (cpp/src/generation/
// generation_spec.cc): exports whose decode does not write the cache in place are refused.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>

#include "generation/generation_spec.h"
#include "tsrunner/errors.h"
#include "tsrunner/manifest.h"

namespace {

tsrunner::Manifest decoder_manifest(const std::string& cache_fields) {
  tsrunner::Manifest manifest;
  manifest.task = "causal-lm";
  manifest.max_length = 64;
  const std::string json_text =
      R"({"generation": {"kind": "decoder", "methods": {"prefill": "prefill",
      "decode": "decode"}, "num_layers": 2, "cache": {"layout": ["batch", "heads", "sequence",
      "head_dim"], "key": [4, 8], "value": [4, 8], "dtype": "float32")" +
      cache_fields + R"(}, "max_context": 64, "eos_token_ids": [0],
      "defaults": {}}})";
  manifest.generation = std::make_shared<const tsrunner::detail::GenerationSpec>(
      tsrunner::detail::parse_generation_record(nlohmann::json::parse(json_text)["generation"],
                                                manifest));
  return manifest;
}

TEST(GenerationSpec, ReadsAnExportWhoseDecodeWritesTheCacheInPlace) {
  const auto spec =
      tsrunner::detail::read_generation_spec(decoder_manifest(R"(, "update": "in_place")"));
  EXPECT_EQ(spec.num_layers, 2);
  EXPECT_EQ(spec.key_heads, 4);
  EXPECT_EQ(spec.value_dim, 8);
}

TEST(GenerationSpec, RefusesAnOlderExportInOneLine) {
  // Exports before the in-place cache: decode returned its keys/values.
  try {
    (void)tsrunner::detail::read_generation_spec(decoder_manifest(""));
    FAIL() << "an export without cache.update was accepted";
  } catch (const tsrunner::LoadError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("re-export"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

}  // namespace
