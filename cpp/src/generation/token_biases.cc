#include "token_biases.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <limits>
#include <map>

namespace tsrunner::detail {
namespace {

using nlohmann::json;

bool token_ids(const json& value, std::vector<int64_t>& out) {
  if (!value.is_array() || value.empty()) return false;
  for (const json& id : value) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0) return false;
    out.push_back(id.get<int64_t>());
  }
  return true;
}

// HF keys the sequences in a dict: a sequence given twice keeps its last bias.
void add_unique(std::vector<SequenceBias>& biases, SequenceBias entry) {
  for (SequenceBias& existing : biases) {
    if (existing.tokens == entry.tokens) {
      existing.bias = entry.bias;
      return;
    }
  }
  biases.push_back(std::move(entry));
}

}  // namespace

TokenBiases read_token_biases(const json& generation_config, std::vector<std::string>& malformed) {
  TokenBiases biases;
  if (!generation_config.is_object()) return biases;
  const auto present = [&](const char* name) -> const json* {
    const auto found = generation_config.find(name);
    return found == generation_config.end() || found->is_null() ? nullptr : &*found;
  };
  // sequence_bias: [[token ids], bias], ... (HF's list form, as generation_config.json saves it)
  if (const json* value = present("sequence_bias")) {
    bool ok = value->is_array() && !value->empty();
    for (const json& pair : ok ? *value : json::array()) {
      SequenceBias entry;
      ok = ok && pair.is_array() && pair.size() == 2 && token_ids(pair[0], entry.tokens) &&
           pair[1].is_number_float();
      if (!ok) break;
      entry.bias = pair[1].get<float>();
      add_unique(biases.sequence_bias, std::move(entry));
    }
    if (!ok) {
      malformed.emplace_back("sequence_bias");
      biases.sequence_bias.clear();
    }
  }
  if (const json* value = present("bad_words_ids")) {
    bool ok = value->is_array() && !value->empty();
    for (const json& words : ok ? *value : json::array()) {
      SequenceBias entry{{}, -std::numeric_limits<float>::infinity()};
      ok = ok && token_ids(words, entry.tokens);
      if (!ok) break;
      add_unique(biases.bad_words, std::move(entry));
    }
    if (!ok) {
      malformed.emplace_back("bad_words_ids");
      biases.bad_words.clear();
    }
  }
  for (const auto& [name, field] :
       {std::pair{"suppress_tokens", &biases.suppress_tokens},
        std::pair{"begin_suppress_tokens", &biases.begin_suppress_tokens}}) {
    const json* value = present(name);
    if (value == nullptr || (value->is_array() && value->empty())) continue;
    if (!token_ids(*value, *field)) {
      malformed.emplace_back(name);
      field->clear();
    }
  }
  return biases;
}

void apply_sequence_biases(std::vector<float>& scores, const std::vector<int64_t>& tokens,
                           const std::vector<SequenceBias>& biases,
                           const std::vector<int64_t>& skipped_single_tokens) {
  // HF sums every applicable bias into one vector, then adds it to the scores once.
  std::map<int64_t, float> total;
  const auto vocab = static_cast<int64_t>(scores.size());
  for (const SequenceBias& entry : biases) {
    const int64_t last = entry.tokens.back();
    const size_t prefix = entry.tokens.size() - 1;
    if (last >= vocab) continue;
    if (prefix == 0 && std::find(skipped_single_tokens.begin(), skipped_single_tokens.end(),
                                 last) != skipped_single_tokens.end()) {
      continue;
    }
    if (prefix > tokens.size() ||
        !std::equal(entry.tokens.begin(), entry.tokens.end() - 1, tokens.end() - prefix)) {
      continue;
    }
    total[last] += entry.bias;
  }
  for (const auto& [token, bias] : total) scores[static_cast<size_t>(token)] += bias;
}

void suppress(std::vector<float>& scores, const std::vector<int64_t>& tokens) {
  for (const int64_t token : tokens) {
    if (token >= 0 && token < static_cast<int64_t>(scores.size())) {
      scores[static_cast<size_t>(token)] = -std::numeric_limits<float>::infinity();
    }
  }
}

}  // namespace tsrunner::detail
