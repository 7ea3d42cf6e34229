#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace tsrunner::detail {

// A token sequence whose last token's score gets `bias` when the sequence so far ends with the
// others (always, for a one-token sequence): HF's SequenceBiasLogitsProcessor.
struct SequenceBias {
  std::vector<int64_t> tokens;
  float bias = 0;
};

// HF's processors that bias, ban or suppress given tokens, as a model's generation_config.json
// saves them (sequence_bias, bad_words_ids, suppress_tokens, begin_suppress_tokens).
struct TokenBiases {
  std::vector<SequenceBias> sequence_bias;     // SequenceBiasLogitsProcessor
  std::vector<SequenceBias> bad_words;         // NoBadWordsLogitsProcessor: bias -inf
  std::vector<int64_t> suppress_tokens;        // SuppressTokensLogitsProcessor
  std::vector<int64_t> begin_suppress_tokens;  // SuppressTokensAtBeginLogitsProcessor

  bool empty() const {
    return sequence_bias.empty() && bad_words.empty() && suppress_tokens.empty() &&
           begin_suppress_tokens.empty();
  }
};

// The settings of `generation_config`; the name of each one set to a value HF would refuse
// (not token-id lists) goes to `malformed` instead.
TokenBiases read_token_biases(const nlohmann::json& generation_config,
                              std::vector<std::string>& malformed);

// Adds the biases whose prefix ends `tokens` (HF: `scores + bias`, biases of one token summed).
void apply_sequence_biases(std::vector<float>& scores, const std::vector<int64_t>& tokens,
                           const std::vector<SequenceBias>& biases,
                           const std::vector<int64_t>& skipped_single_tokens = {});

// Every listed token's score becomes -inf.
void suppress(std::vector<float>& scores, const std::vector<int64_t>& tokens);

}  // namespace tsrunner::detail
