#include "generation_spec.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <random>
#include <sstream>

#include "tsrunner/errors.h"
#include "tsrunner/manifest.h"

namespace tsrunner::detail {
namespace {

using nlohmann::json;

int64_t int_or(const json& object, const char* key, int64_t fallback) {
  const auto found = object.find(key);
  return found != object.end() && found->is_number_integer() ? found->get<int64_t>() : fallback;
}

double number_or(const json& object, const char* key, double fallback) {
  const auto found = object.find(key);
  return found != object.end() && found->is_number() ? found->get<double>() : fallback;
}

[[noreturn]] void out_of_range(const std::string& name, double value, const std::string& range) {
  std::ostringstream message;
  message << name << " must be " << range << ", not " << value;
  throw InvalidInput(message.str());
}

}  // namespace

std::string describe_generation(const std::string& manifest_json) {
  const json root = json::parse(manifest_json, nullptr, false);
  if (root.is_discarded() || !root.contains("generation") || !root["generation"].is_object()) {
    return {};
  }
  const json& record = root["generation"];
  std::ostringstream out;
  const json cache = record.value("cache", json::object());
  const bool seq2seq = record.value("kind", std::string()) == "encoder-decoder";
  out << "  generates   " << (seq2seq ? "encode + decode" : "prefill + decode") << ", KV cache "
      << int_or(record, "num_layers", 0) << " layers x key "
      << cache.value("key", json::array()).dump() << " value "
      << cache.value("value", json::array()).dump() << " (heads, head_dim), context "
      << int_or(record, "max_context", 0) << "\n";
  out << "  eos         " << record.value("eos_token_ids", json::array()).dump() << ", pad "
      << record.value("pad_token_id", json()).dump() << ", bos "
      << record.value("bos_token_id", json()).dump();
  if (seq2seq) {
    out << ", decoder start " << record.value("decoder_start_token_id", json()).dump()
        << ", source up to " << int_or(record, "max_source", 0);
  }
  if (!record.value("forced_bos_token_id", json()).is_null()) {
    out << ", forced bos " << record["forced_bos_token_id"].dump();
  }
  if (!record.value("forced_eos_token_ids", json::array()).empty()) {
    out << ", forced eos " << record["forced_eos_token_ids"].dump();
  }
  out << "\n";
  std::string defaults;
  const json values = record.value("defaults", json::object());
  for (const auto& item : values.items()) {
    if (item.value().is_null()) continue;
    defaults += (defaults.empty() ? "" : ", ") + item.key() + " " + item.value().dump();
  }
  out << "  defaults    " << defaults << "\n";
  for (const std::string& refusal : generation_refusals(record)) {
    out << "  refuses     " << refusal << "\n";
  }
  return out.str();
}

const GenerationSpec& read_generation_spec(const Manifest& manifest) {
  if (!manifest.generation) {
    // Why, where the manifest tells: the export chose forward only.
    std::string why = "(re-export a causal-lm model with this version of `tsrunner export`)";
    if (manifest.aoti) {
      why = "(a .pt2 (AOTInductor) export has no generation methods: export the model to a .pt)";
    } else if (!manifest.shape_contract.buckets.empty()) {
      why = "(exported with --buckets, which keeps forward only: export it without buckets)";
    }
    throw InvalidInput("this " + manifest.task +
                       " export cannot generate: its manifest has no \"generation\" record " + why);
  }
  if (!manifest.generation->refusal.empty()) throw LoadError(manifest.generation->refusal);
  return *manifest.generation;
}

GenerationSpec parse_generation_record(const json& record, const Manifest& manifest) {
  GenerationSpec spec;
  const json methods = record.value("methods", json::object());
  spec.encoder_decoder = record.value("kind", std::string()) == "encoder-decoder";
  spec.prefill_method = methods.value(spec.encoder_decoder ? "encode" : "prefill",
                                      spec.encoder_decoder ? "encode" : spec.prefill_method);
  spec.decode_method = methods.value("decode", spec.decode_method);
  if (spec.encoder_decoder) {
    const json cross = record.value("cross_cache", json::object());
    const json cross_key = cross.value("key", json::array());
    const json cross_value = cross.value("value", json::array());
    if (cross_key.size() != 2 || cross_value.size() != 2) {
      throw LoadError("the manifest's encoder-decoder generation record has no cross_cache layout");
    }
    spec.cross_key_heads = cross_key[0].get<int64_t>();
    spec.cross_key_dim = cross_key[1].get<int64_t>();
    spec.cross_value_heads = cross_value[0].get<int64_t>();
    spec.cross_value_dim = cross_value[1].get<int64_t>();
    spec.max_source = int_or(record, "max_source", manifest.max_length);
    spec.decoder_start_token_id = int_or(record, "decoder_start_token_id", 0);
  }
  if (record.contains("forced_bos_token_id") && record["forced_bos_token_id"].is_number_integer()) {
    spec.forced_bos_token_id = record["forced_bos_token_id"].get<int64_t>();
  }
  if (record.contains("forced_eos_token_ids") && record["forced_eos_token_ids"].is_array()) {
    spec.forced_eos_token_ids = record["forced_eos_token_ids"].get<std::vector<int64_t>>();
  }
  spec.num_layers = int_or(record, "num_layers", 0);
  const json cache = record.value("cache", json::object());
  const json key = cache.value("key", json::array());
  const json value = cache.value("value", json::array());
  if (spec.num_layers < 1 || key.size() != 2 || value.size() != 2) {
    throw LoadError("the manifest's generation record has no cache layout (num_layers, cache)");
  }
  // Exports before the in-place cache returned each step's keys/values (a copy of the whole
  // cache per step inside the graph); the generator drives only decode methods that write in place.
  if (cache.value("update", std::string()) != "in_place") {
    spec.refusal =
        "this generation export's decode returns its keys/values instead of writing them into "
        "the cache (an older tsrunner export): re-export the model with this tsrunner";
  }
  spec.key_heads = key[0].get<int64_t>();
  spec.key_dim = key[1].get<int64_t>();
  spec.value_heads = value[0].get<int64_t>();
  spec.value_dim = value[1].get<int64_t>();
  spec.max_context = int_or(record, "max_context", manifest.max_length);
  spec.pad_token_id = int_or(record, "pad_token_id", manifest.pad_token_id.value_or(0));
  if (record.contains("eos_token_ids") && record["eos_token_ids"].is_array()) {
    spec.eos_token_ids = record["eos_token_ids"].get<std::vector<int64_t>>();
  }
  const json defaults = record.value("defaults", json::object());
  GenerationParams& d = spec.defaults;
  if (defaults.contains("max_length") && defaults["max_length"].is_number_integer()) {
    spec.default_max_length = defaults["max_length"].get<int64_t>();
  }
  spec.default_min_length = int_or(defaults, "min_length", 0);
  if (defaults.contains("max_new_tokens") && defaults["max_new_tokens"].is_number_integer()) {
    d.max_new_tokens = defaults["max_new_tokens"].get<int64_t>();
  }
  d.min_new_tokens = int_or(defaults, "min_new_tokens", 0);
  d.do_sample = defaults.value("do_sample", false);
  d.temperature = number_or(defaults, "temperature", 1.0);
  d.top_k = int_or(defaults, "top_k", 50);
  d.top_p = number_or(defaults, "top_p", 1.0);
  d.min_p = number_or(defaults, "min_p", 0.0);
  d.repetition_penalty = number_or(defaults, "repetition_penalty", 1.0);
  d.no_repeat_ngram_size = int_or(defaults, "no_repeat_ngram_size", 0);
  d.num_beams = int_or(defaults, "num_beams", 1);
  d.length_penalty = number_or(defaults, "length_penalty", 1.0);
  // HF: early_stopping is a bool or the string "never".
  const json early = defaults.value("early_stopping", json(false));
  d.early_stopping = early.is_string()
                         ? early.get<std::string>()
                         : (early.is_boolean() && early.get<bool>() ? "true" : "false");
  d.num_return_sequences = int_or(defaults, "num_return_sequences", 1);
  d.eos_token_ids = spec.eos_token_ids;
  const json saved = record.value("generation_config", json::object());
  spec.unsupported = find_unsupported_settings(saved);
  std::vector<std::string> malformed;  // refused by the rules of unsupported_settings.cc
  TokenBiases biases = read_token_biases(saved, malformed);
  if (!biases.empty()) spec.token_biases = std::make_shared<const TokenBiases>(std::move(biases));
  spec.remove_invalid_values = saved.value("remove_invalid_values", json(false)) == json(true);
  spec.exponential_decay = read_exponential_decay(saved);
  return spec;
}

ResolvedParams resolve_params(const GenerationSpec& spec, const GenerationParams& request,
                              int64_t prompt_length) {
  const GenerationParams& d = spec.defaults;
  ResolvedParams p;
  if (request.max_new_tokens) {
    p.max_new_tokens = *request.max_new_tokens;
    if (p.max_new_tokens < 1) out_of_range("max_new_tokens", double(p.max_new_tokens), ">= 1");
  } else {
    constexpr int64_t kHfDefaultNewTokens = 20;
    p.max_new_tokens = std::max<int64_t>(
        1,
        d.max_new_tokens.value_or(spec.default_max_length ? *spec.default_max_length - prompt_length
                                                          : kHfDefaultNewTokens));
  }
  p.min_new_tokens = request.min_new_tokens.value_or(
      std::max(d.min_new_tokens.value_or(0), spec.default_min_length - prompt_length));
  if (p.min_new_tokens < 0) out_of_range("min_new_tokens", double(p.min_new_tokens), ">= 0");
  if (request.max_new_tokens && request.min_new_tokens && p.min_new_tokens > p.max_new_tokens) {
    throw InvalidInput("min_new_tokens (" + std::to_string(p.min_new_tokens) +
                       ") must not exceed max_new_tokens (" + std::to_string(p.max_new_tokens) +
                       ")");
  }
  p.temperature = request.temperature.value_or(*d.temperature);
  if (p.temperature < 0) out_of_range("temperature", p.temperature, ">= 0");
  // Asking for a sampling setting asks for sampling (as OpenAI's and TGI's APIs read them);
  // HF would ignore it with a warning. Temperature 0 is greedy.
  const bool sampling_asked =
      request.temperature || request.top_k || request.top_p || request.min_p;
  p.do_sample = request.do_sample.value_or(sampling_asked || *d.do_sample) && p.temperature > 0;
  p.top_k = request.top_k.value_or(*d.top_k);
  if (p.top_k < 0) out_of_range("top_k", double(p.top_k), ">= 0");
  p.top_p = request.top_p.value_or(*d.top_p);
  if (!(p.top_p > 0 && p.top_p <= 1)) out_of_range("top_p", p.top_p, "in (0, 1]");
  p.min_p = request.min_p.value_or(d.min_p.value_or(0.0));
  if (!(p.min_p >= 0 && p.min_p <= 1)) out_of_range("min_p", p.min_p, "in [0, 1]");
  p.repetition_penalty = request.repetition_penalty.value_or(*d.repetition_penalty);
  if (!(p.repetition_penalty > 0)) out_of_range("repetition_penalty", p.repetition_penalty, "> 0");
  p.no_repeat_ngram_size = request.no_repeat_ngram_size.value_or(*d.no_repeat_ngram_size);
  if (p.no_repeat_ngram_size < 0) {
    out_of_range("no_repeat_ngram_size", double(p.no_repeat_ngram_size), ">= 0");
  }
  if (request.seed) {
    p.seed = *request.seed;
  } else {
    std::random_device device;
    p.seed = (uint64_t{device()} << 32) ^ device();
  }
  if (!request.ignore_eos) p.eos_token_ids = request.eos_token_ids.value_or(spec.eos_token_ids);
  if (request.stop.size() > 4) {
    throw InvalidInput("stop takes at most 4 strings, not " + std::to_string(request.stop.size()));
  }
  for (const std::string& stop : request.stop) {
    if (stop.empty()) throw InvalidInput("a stop string must not be empty");
  }
  p.stop = request.stop;
  p.forced_bos_token_id = spec.forced_bos_token_id;
  p.forced_eos_token_ids = spec.forced_eos_token_ids;
  p.token_biases = spec.token_biases;
  p.remove_invalid_values = spec.remove_invalid_values;
  p.exponential_decay = spec.exponential_decay;
  p.num_beams = request.num_beams.value_or(d.num_beams.value_or(1));
  if (p.num_beams < 1) out_of_range("num_beams", double(p.num_beams), ">= 1");
  p.length_penalty = request.length_penalty.value_or(d.length_penalty.value_or(1.0));
  p.early_stopping = request.early_stopping.value_or(d.early_stopping.value_or("false"));
  if (p.early_stopping != "true" && p.early_stopping != "false" && p.early_stopping != "never") {
    throw InvalidInput("early_stopping must be true, false or \"never\", not \"" +
                       p.early_stopping + "\"");
  }
  p.num_return_sequences =
      request.num_return_sequences.value_or(d.num_return_sequences.value_or(1));
  if (p.num_beams == 1 && p.do_sample && p.num_return_sequences > 1) {
    throw InvalidInput("num_return_sequences " + std::to_string(p.num_return_sequences) +
                       " with sampling (HF draws that many samples per prompt) is not supported: "
                       "ask for num_return_sequences 1 and send the prompt with several seeds");
  }
  if (p.num_return_sequences < 1 || p.num_return_sequences > p.num_beams) {
    throw InvalidInput("num_return_sequences must be in [1, num_beams " +
                       std::to_string(p.num_beams) + "], not " +
                       std::to_string(p.num_return_sequences));
  }
  if (p.num_beams > 1) {
    // HF's beam sampling (do_sample with beams) draws the beams' candidates: refused, whoever
    // asked for which (a model's saved defaults included), rather than answered differently.
    if (p.do_sample) {
      const std::string sample_source = request.do_sample ? "the request's"
                                        : sampling_asked
                                            ? "asked by the request's sampling parameters"
                                            : "the model's default";
      throw InvalidInput("do_sample true (" + sample_source + ") with num_beams " +
                         std::to_string(p.num_beams) + " (" +
                         (request.num_beams ? "the request's" : "the model's default") +
                         ") is HF's beam sampling, which this runner does not do: ask for "
                         "do_sample false (temperature 0) for beam search, or num_beams 1 to "
                         "sample");
    }
    if (!p.stop.empty()) {
      throw InvalidInput("stop strings are not supported with beam search (num_beams > 1)");
    }
  }
  refuse_unsupported(spec.unsupported, p);
  return p;
}

}  // namespace tsrunner::detail
