#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "token_biases.h"
#include "tsrunner/generator.h"
#include "unsupported_settings.h"

namespace tsrunner {
struct Manifest;
}

namespace tsrunner::detail {

// What the manifest's "generation" record says about a decoder or encoder-decoder export.
struct GenerationSpec {
  bool encoder_decoder = false;            // kind "encoder-decoder": encode + decode methods
  std::string prefill_method = "prefill";  // an encoder-decoder's "encode"
  std::string decode_method = "decode";
  int64_t num_layers = 0;
  int64_t key_heads = 0, key_dim = 0, value_heads = 0, value_dim = 0;
  // Encoder-decoders: the cross-attention cache's layout and the longest source.
  int64_t cross_key_heads = 0, cross_key_dim = 0, cross_value_heads = 0, cross_value_dim = 0;
  int64_t max_source = 0;
  int64_t decoder_start_token_id = 0;
  int64_t max_context = 0;  // the decoder's: prompt (or decoder start) and new tokens
  int64_t pad_token_id = 0;
  std::vector<int64_t> eos_token_ids;
  std::optional<int64_t> forced_bos_token_id;  // HF ForcedBOSTokenLogitsProcessor
  std::vector<int64_t> forced_eos_token_ids;   // HF ForcedEOSTokenLogitsProcessor
  // The model's max_length (HF: counts the prompt). Unset: HF's default, which Transformers 5
  // applies as 20 new tokens (GenerationMixin._prepare_generated_length).
  std::optional<int64_t> default_max_length;
  int64_t default_min_length = 0;  // HF min_length: counts the prompt too
  GenerationParams defaults;       // every field but seed and stop set
  // The saved sequence_bias, bad_words_ids, suppress_tokens, begin_suppress_tokens (null: none).
  std::shared_ptr<const TokenBiases> token_biases;
  bool remove_invalid_values = false;                           // the saved remove_invalid_values
  std::optional<std::pair<int64_t, double>> exponential_decay;  // the saved (start, factor)
  // Why the generator refuses this export (an older export format), or empty. Its other uses
  // (forward, tsrun info) still load.
  std::string refusal;
  // Saved settings HF generate would apply and this runner does not: refused where they apply.
  std::vector<UnsupportedSetting> unsupported;
};

// The lines `tsrun info` / `tsrunner info` print for a manifest's "generation" record.
std::string describe_generation(const std::string& manifest_json);

// A manifest's "generation" record, read once by Manifest::parse (`manifest` holds the fields
// parsed before it). Throws LoadError when the record lacks what generation needs.
GenerationSpec parse_generation_record(const nlohmann::json& record, const Manifest& manifest);

// The manifest's parsed record; throws InvalidInput, with why where the manifest tells, when
// the export does not generate.
const GenerationSpec& read_generation_spec(const Manifest& manifest);

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
  std::optional<int64_t> forced_bos_token_id;  // forced as the first token of the sequence
  std::vector<int64_t> forced_eos_token_ids;   // forced as the last token max_new_tokens allows
  std::shared_ptr<const TokenBiases> token_biases;  // the model's; null when it saves none
  bool remove_invalid_values = false;               // the model's: HF's InfNanRemoveLogitsProcessor
  // The model's exponential_decay_length_penalty (start index, decay factor): HF's
  // ExponentialDecayLengthPenalty on the EOS scores.
  std::optional<std::pair<int64_t, double>> exponential_decay;
  int64_t num_beams = 1;
  double length_penalty = 1.0;
  std::string early_stopping = "false";  // "true", "false" or "never"
  int64_t num_return_sequences = 1;
};
// `prompt_length`: what HF's max_length and min_length count besides new tokens (a decoder's
// prompt; an encoder-decoder's decoder start token, 1).
ResolvedParams resolve_params(const GenerationSpec& spec, const GenerationParams& request,
                              int64_t prompt_length);

}  // namespace tsrunner::detail
