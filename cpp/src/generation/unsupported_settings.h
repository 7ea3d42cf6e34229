#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace tsrunner::detail {

struct ResolvedParams;

// A setting of a model's generation_config.json that changes what HF `generate` writes and that
// this runner does not implement. It is never ignored silently: a request in a decoding mode the
// setting applies to is refused (InvalidInput naming it), so every answer is HF's or none.
struct UnsupportedSetting {
  std::string name;     // the generation_config.json key
  std::string value;    // as saved (JSON)
  std::string hf;       // what HF generate does with it
  std::string when;     // "" (always), "when sampling", "with beam search", ...
  std::string instead;  // how a request avoids it ("" when none can)
  std::function<bool(const ResolvedParams&)> applies;
};

// The settings of `generation_config` (the saved generation_config.json, as the manifest's
// "generation.generation_config" keeps it) that HF generate applies and this runner does not.
std::vector<UnsupportedSetting> find_unsupported_settings(const nlohmann::json& generation_config);

// The saved exponential_decay_length_penalty as (start index, decay factor); unset when absent
// or not such a pair (then find_unsupported_settings refuses it, as HF would fail on it).
std::optional<std::pair<int64_t, double>> read_exponential_decay(
    const nlohmann::json& generation_config);

// Throws InvalidInput for the first setting that applies to a request resolved to `params`.
void refuse_unsupported(const std::vector<UnsupportedSetting>& settings,
                        const ResolvedParams& params);

// What an export's saved defaults make this runner refuse, one sentence each (empty when
// nothing): HF's beam sampling (do_sample with num_beams > 1) and every unsupported setting.
// For `tsrun info`, `tsrunner info` and the export's warning. `record`: the manifest's
// "generation" record.
std::vector<std::string> generation_refusals(const nlohmann::json& record);

}  // namespace tsrunner::detail
