#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tsrunner/generator.h"

namespace tsrunner {
struct Manifest;
}

namespace tsrunner::detail {

// What the manifest's "generation" record says about a decoder export.
struct GenerationSpec {
  std::string prefill_method = "prefill";
  std::string decode_method = "decode";
  int64_t num_layers = 0;
  int64_t key_heads = 0, key_dim = 0, value_heads = 0, value_dim = 0;
  int64_t max_context = 0;
  int64_t pad_token_id = 0;
  std::vector<int64_t> eos_token_ids;
  int64_t default_max_length = 20;  // HF max_length: counts the prompt
  int64_t default_min_length = 0;   // HF min_length: counts the prompt too
  GenerationParams defaults;        // every field but seed and stop set
};

// The lines `tsrun info` / `tsrunner info` print for a manifest's "generation" record.
std::string describe_generation(const std::string& manifest_json);

// Throws InvalidInput when the manifest has no "generation" record (not a generation export).
GenerationSpec read_generation_spec(const Manifest& manifest);

// A request's parameters over the defaults, every field set (except seed, which stays unset for
// a random one), checked: InvalidInput naming the parameter and its range.
struct ResolvedParams {
  int64_t max_new_tokens = 0;
  int64_t min_new_tokens = 0;
  bool do_sample = false;
  double temperature = 1.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  double min_p = 0.0;
  double repetition_penalty = 1.0;
  int64_t no_repeat_ngram_size = 0;
  uint64_t seed = 0;
  std::vector<int64_t> eos_token_ids;
  std::vector<std::string> stop;
};
ResolvedParams resolve_params(const GenerationSpec& spec, const GenerationParams& request,
                              int64_t prompt_length);

}  // namespace tsrunner::detail
