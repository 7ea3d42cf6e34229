#include "unsupported_settings.h"

#include <nlohmann/json.hpp>

#include <cmath>

#include "generation_spec.h"
#include "token_biases.h"
#include "tsrunner/errors.h"
#include "tsrunner/generator.h"

namespace tsrunner::detail {
namespace {

using nlohmann::json;

// Decoding modes, as HF's GenerationConfig.get_generation_mode tells them apart.
bool always(const ResolvedParams&) { return true; }
bool sampling(const ResolvedParams& p) { return p.do_sample && p.num_beams == 1; }
bool one_beam(const ResolvedParams& p) { return p.num_beams == 1; }
bool beams(const ResolvedParams& p) { return p.num_beams > 1; }
bool contrastive(const ResolvedParams& p) {
  return !p.do_sample && p.num_beams == 1 && p.top_k > 1;  // with penalty_alpha > 0
}

double number(const json& value) { return value.is_number() ? value.get<double>() : NAN; }
bool present(const json& value) {
  return !value.is_null() && !((value.is_array() || value.is_object()) && value.empty());
}

// The token-list settings the runner applies (token_biases.h), unless malformed (HF refuses
// those values).
template <const char* kName>
bool malformed(const json& value) {
  std::vector<std::string> names;
  (void)read_token_biases(json{{kName, value}}, names);
  return !names.empty();
}
constexpr char kSequenceBias[] = "sequence_bias";
constexpr char kBadWordsIds[] = "bad_words_ids";
constexpr char kSuppressTokens[] = "suppress_tokens";
constexpr char kBeginSuppressTokens[] = "begin_suppress_tokens";
constexpr const char* kNotTokenIds = "given a value that is not lists of token ids";
constexpr const char* kDecay = "exponential_decay_length_penalty";
constexpr const char* kNotStartAndFactor = "given a value that is not [start index, factor]";

// One rule per setting HF 5.24's generate reads and this runner does not apply: when its value
// changes HF's output (GenerationMixin._get_logits_processor, _get_stopping_criteria,
// GenerationConfig.get_generation_mode), and in which decoding mode.
struct Rule {
  const char* name;
  bool (*changes_output)(const json& value);
  const char* hf;
  const char* when;
  bool (*applies)(const ResolvedParams&);
  const char* instead;
};

constexpr const char* kNoRequest = "";
constexpr const char* kGreedy = "ask for do_sample false (temperature 0)";
const Rule kRules[] = {
    {"guidance_scale", [](const json& v) { return present(v) && number(v) != 1; },
     "classifier-free guidance (UnbatchedClassifierFreeGuidanceLogitsProcessor)", "", always,
     kNoRequest},
    {"encoder_repetition_penalty", [](const json& v) { return present(v) && number(v) != 1; },
     "EncoderRepetitionPenaltyLogitsProcessor", "", always, kNoRequest},
    {"encoder_no_repeat_ngram_size", [](const json& v) { return number(v) > 0; },
     "EncoderNoRepeatNGramLogitsProcessor", "", always, kNoRequest},
    {kDecay, [](const json& v) { return present(v) && !read_exponential_decay(json{{kDecay, v}}); },
     kNotStartAndFactor, "", always, kNoRequest},
    {kSequenceBias, malformed<kSequenceBias>, kNotTokenIds, "", always, kNoRequest},
    {kBadWordsIds, malformed<kBadWordsIds>, kNotTokenIds, "", always, kNoRequest},
    {kSuppressTokens, malformed<kSuppressTokens>, kNotTokenIds, "", always, kNoRequest},
    {kBeginSuppressTokens, malformed<kBeginSuppressTokens>, kNotTokenIds, "", always, kNoRequest},
    {"watermarking_config", present, "a watermarking logits processor", "", always, kNoRequest},
    {"max_time", present, "MaxTimeCriteria (stops after that many seconds)", "", always,
     kNoRequest},
    {"stop_strings", present, "StopStringCriteria (which keeps the stop string in the output)", "",
     always, kNoRequest},
    {"token_healing", [](const json& v) { return v == json(true); }, "token healing of the prompt",
     "", always, kNoRequest},
    {"constraints", present, "constrained beam search", "", always, kNoRequest},
    {"force_words_ids", present, "constrained beam search", "", always, kNoRequest},
    {"dola_layers", present, "DoLa decoding", "with one beam", one_beam, "ask for num_beams > 1"},
    {"penalty_alpha", [](const json& v) { return number(v) > 0; },
     "contrastive search (with top_k > 1)", "when decoding greedily", contrastive,
     "ask for do_sample true or num_beams > 1"},
    {"num_beam_groups", [](const json& v) { return number(v) > 1; }, "group (diverse) beam search",
     "with beam search", beams, "ask for num_beams 1"},
    {"renormalize_logits", [](const json& v) { return v == json(true); },
     "LogitNormalization of the beam scores", "with beam search", beams, "ask for num_beams 1"},
    {"typical_p", [](const json& v) { return number(v) < 1; }, "TypicalLogitsWarper",
     "when sampling", sampling, kGreedy},
    {"epsilon_cutoff", [](const json& v) { return number(v) > 0 && number(v) < 1; },
     "EpsilonLogitsWarper", "when sampling", sampling, kGreedy},
    {"eta_cutoff", [](const json& v) { return number(v) > 0 && number(v) < 1; }, "EtaLogitsWarper",
     "when sampling", sampling, kGreedy},
    {"top_h", present, "TopHLogitsWarper", "when sampling", sampling, kGreedy},
};

}  // namespace

std::optional<std::pair<int64_t, double>> read_exponential_decay(const json& generation_config) {
  const auto found = generation_config.find("exponential_decay_length_penalty");
  if (found == generation_config.end() || !found->is_array() || found->size() != 2 ||
      !(*found)[0].is_number_integer() || !(*found)[1].is_number()) {
    return std::nullopt;
  }
  return std::pair{(*found)[0].get<int64_t>(), (*found)[1].get<double>()};
}

std::vector<UnsupportedSetting> find_unsupported_settings(const json& generation_config) {
  std::vector<UnsupportedSetting> found;
  if (!generation_config.is_object()) return found;
  for (const Rule& rule : kRules) {
    const auto value = generation_config.find(rule.name);
    if (value == generation_config.end() || !rule.changes_output(*value)) continue;
    found.push_back({rule.name, value->dump(), rule.hf, rule.when, rule.instead, rule.applies});
  }
  return found;
}

void refuse_unsupported(const std::vector<UnsupportedSetting>& settings,
                        const ResolvedParams& params) {
  for (const UnsupportedSetting& setting : settings) {
    if (!setting.applies(params)) continue;
    throw InvalidInput("this model's generation_config.json sets " + setting.name + " " +
                       setting.value + ", which HF generate applies" +
                       (setting.when.empty() ? "" : " " + setting.when) + " (" + setting.hf +
                       ") and this runner does not: " +
                       (setting.instead.empty() ? "" : setting.instead + ", or ") + "remove " +
                       setting.name + " from generation_config.json and re-export");
  }
}

std::vector<std::string> generation_refusals(const json& record) {
  std::vector<std::string> lines;
  const json defaults = record.value("defaults", json::object());
  const int64_t num_beams = defaults.value("num_beams", json(1)).is_number_integer()
                                ? defaults["num_beams"].get<int64_t>()
                                : 1;
  if (defaults.value("do_sample", json(false)) == json(true) && num_beams > 1) {
    lines.push_back("do_sample true with num_beams " + std::to_string(num_beams) +
                    " is HF's beam sampling, which this runner does not do: a request must ask "
                    "for do_sample false (temperature 0) or num_beams 1");
  }
  for (const UnsupportedSetting& setting :
       find_unsupported_settings(record.value("generation_config", json::object()))) {
    lines.push_back(setting.name + " " + setting.value + " (HF's " + setting.hf + ") is not " +
                    "implemented here: " +
                    (setting.when.empty() ? "every request is refused"
                                          : "requests are refused " + setting.when));
  }
  return lines;
}

}  // namespace tsrunner::detail

namespace tsrunner {

std::vector<std::string> generation_refusals(const std::string& manifest_json) {
  const auto root = nlohmann::json::parse(manifest_json, nullptr, false);
  if (!root.is_object() || !root.contains("generation")) return {};
  return detail::generation_refusals(root["generation"]);
}

}  // namespace tsrunner
