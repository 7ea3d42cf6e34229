#include "completion_parsing.h"

#include <limits>
#include <nlohmann/json.hpp>
#include <set>

namespace tsrunner::serve {
namespace {

using nlohmann::json;

constexpr int64_t kOpenAIDefaultMaxTokens = 16;
constexpr int64_t kTgiDefaultMaxNewTokens = 100;
constexpr int64_t kMaxChoices = 128;
constexpr size_t kMaxStops = 4;

json parse_object(std::string_view body, int invalid) {
  json root;
  try {
    root = json::parse(body.begin(), body.end());
  } catch (const json::parse_error& error) {
    throw RequestError(400, "malformed JSON at byte " + std::to_string(error.byte));
  } catch (const json::exception& error) {
    throw RequestError(400, std::string("malformed JSON: ") + error.what());
  }
  if (!root.is_object()) throw RequestError(invalid, "the request body must be a JSON object");
  return root;
}

// Reads the fields of one JSON object, each by its name, refusing names it does not know.
class Fields {
 public:
  Fields(const json& object, int status, std::string prefix = "")
      : object_(object), status_(status), prefix_(std::move(prefix)) {}

  // The field's value; null when absent or null.
  const json* get(const std::string& name) {
    known_.insert(name);
    const auto found = object_.find(name);
    return found == object_.end() || found->is_null() ? nullptr : &*found;
  }
  [[noreturn]] void fail(const std::string& name, const std::string& message) const {
    throw ParamError(status_, prefix_ + name, "`" + prefix_ + name + "` " + message);
  }
  std::optional<int64_t> integer(const std::string& name, int64_t low, int64_t high) {
    const json* value = get(name);
    if (value == nullptr) return std::nullopt;
    if (!value->is_number_integer() ||
        (value->is_number_unsigned() &&
         value->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))) {
      fail(name, "must be an integer");
    }
    const auto number = value->get<int64_t>();
    if (number < low || number > high) {
      fail(name, "must be in [" + std::to_string(low) + ", " + std::to_string(high) + "], not " +
                     std::to_string(number));
    }
    return number;
  }
  // `low_open`: the low end is excluded.
  std::optional<double> number(const std::string& name, double low, double high, bool low_open,
                               const std::string& range) {
    const json* value = get(name);
    if (value == nullptr) return std::nullopt;
    if (!value->is_number()) fail(name, "must be a number");
    const auto number = value->get<double>();
    if (!(low_open ? number > low : number >= low) || !(number <= high)) {
      fail(name, "must be " + range + ", not " + value->dump());
    }
    return number;
  }
  std::optional<bool> flag(const std::string& name) {
    const json* value = get(name);
    if (value == nullptr) return std::nullopt;
    if (!value->is_boolean()) fail(name, "must be true or false");
    return value->get<bool>();
  }
  // A string or a list of at most 4 non-empty strings.
  std::vector<std::string> stops(const std::string& name, bool string_allowed) {
    const json* value = get(name);
    if (value == nullptr) return {};
    std::vector<std::string> result;
    if (value->is_string() && string_allowed) {
      result.push_back(value->get<std::string>());
    } else if (value->is_array()) {
      for (const json& item : *value) {
        if (!item.is_string()) fail(name, "must hold strings only");
        result.push_back(item.get<std::string>());
      }
    } else {
      fail(name, string_allowed ? "must be a string or a list of up to 4 strings"
                                : "must be a list of up to 4 strings");
    }
    if (result.size() > kMaxStops) {
      fail(name, "takes at most 4 strings, not " + std::to_string(result.size()));
    }
    for (const std::string& stop : result) {
      if (stop.empty()) fail(name, "must not hold an empty string");
    }
    return result;
  }
  // A field this server does not implement: refused unless absent, null or `harmless`.
  void unsupported(const std::string& name, const json& harmless, const std::string& why) {
    const json* value = get(name);
    if (value != nullptr && *value != harmless) fail(name, "is not supported: " + why);
  }
  // Every field not read: refused by name.
  void refuse_unknown() const {
    for (const auto& item : object_.items()) {
      if (known_.count(item.key()) == 0) {
        throw ParamError(status_, prefix_ + item.key(),
                         "Unrecognized request argument supplied: " + prefix_ + item.key());
      }
    }
  }

 private:
  const json& object_;
  int status_;
  std::string prefix_;
  std::set<std::string> known_;
};

std::vector<int64_t> token_list(const json& list, const std::string& what) {
  std::vector<int64_t> ids;
  for (const json& id : list) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
        (id.is_number_unsigned() &&
         id.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))) {
      throw ParamError(400, "prompt", what + " must hold token ids (integers >= 0)");
    }
    ids.push_back(id.get<int64_t>());
  }
  if (ids.empty()) throw ParamError(400, "prompt", what + " cannot be empty");
  return ids;
}

// OpenAI's prompt: a string, a list of strings, a list of token ids, or a list of such lists.
void read_prompt(const json& prompt, GenerationRequest& request) {
  if (prompt.is_string()) {
    request.texts.push_back(prompt.get<std::string>());
    return;
  }
  if (!prompt.is_array() || prompt.empty()) {
    throw ParamError(400, "prompt",
                     "`prompt` must be a string, a list of strings, a list of token ids or a list "
                     "of token-id lists");
  }
  request.prompt_list = true;
  if (prompt[0].is_number()) {
    request.prompt_list = false;
    request.token_ids.push_back(token_list(prompt, "`prompt`"));
    return;
  }
  for (size_t i = 0; i < prompt.size(); ++i) {
    const std::string what = "`prompt[" + std::to_string(i) + "]`";
    if (prompt[i].is_string() && request.token_ids.empty()) {
      request.texts.push_back(prompt[i].get<std::string>());
    } else if (prompt[i].is_array() && request.texts.empty()) {
      request.token_ids.push_back(token_list(prompt[i], what));
    } else {
      throw ParamError(400, "prompt",
                       what + " must be " +
                           (request.texts.empty() ? "a token-id list" : "a string") +
                           " like the items before it");
    }
  }
}

}  // namespace

GenerationRequest parse_completion_request(std::string_view body) {
  const json root = parse_object(body, 400);
  Fields fields(root, 400);
  GenerationRequest request;
  if (const json* model = fields.get("model")) {
    if (!model->is_string()) fields.fail("model", "must be a string");
    request.model = model->get<std::string>();
  }
  const json* prompt = fields.get("prompt");
  if (prompt == nullptr) fields.fail("prompt", "is required");
  read_prompt(*prompt, request);
  GenerationParams& p = request.params;
  p.max_new_tokens = fields.integer("max_tokens", 1, std::numeric_limits<int32_t>::max())
                         .value_or(kOpenAIDefaultMaxTokens);
  p.temperature = fields.number("temperature", 0, 2, false, "in [0, 2]");
  p.top_p = fields.number("top_p", 0, 1, true, "in (0, 1]");
  request.n = fields.integer("n", 1, kMaxChoices).value_or(1);
  p.num_return_sequences = 1;  // `n` counts the choices, not a saved num_return_sequences
  p.stop = fields.stops("stop", true);
  if (const auto seed = fields.integer("seed", std::numeric_limits<int64_t>::min(),
                                       std::numeric_limits<int64_t>::max())) {
    p.seed = static_cast<uint64_t>(*seed);
  }
  request.stream = fields.flag("stream").value_or(false);
  if (const json* options = fields.get("stream_options")) {
    if (!request.stream) fields.fail("stream_options", "is only allowed when `stream` is true");
    if (!options->is_object()) fields.fail("stream_options", "must be an object");
    Fields stream_options(*options, 400, "stream_options.");
    request.include_usage = stream_options.flag("include_usage").value_or(false);
    stream_options.refuse_unknown();
  }
  // Extensions other servers (vLLM) take too.
  p.top_k = fields.integer("top_k", 0, std::numeric_limits<int32_t>::max());
  p.min_p = fields.number("min_p", 0, 1, false, "in [0, 1]");
  p.repetition_penalty = fields.number("repetition_penalty", 0, 1e9, true, "> 0");
  p.min_new_tokens = fields.integer("min_tokens", 0, std::numeric_limits<int32_t>::max());
  p.ignore_eos = fields.flag("ignore_eos").value_or(false);
  // OpenAI's fields this server does not implement: refused rather than silently ignored.
  fields.unsupported("echo", false, "send the prompt's text yourself");
  fields.unsupported("logprobs", json(), "no log-probabilities are computed");
  fields.unsupported("suffix", json(), "no insertion model");
  fields.unsupported("best_of", request.n, "only best_of = n");
  fields.unsupported("presence_penalty", 0, "use `repetition_penalty`");
  fields.unsupported("frequency_penalty", 0, "use `repetition_penalty`");
  fields.unsupported("logit_bias", json::object(), "no logit bias");
  (void)fields.get("user");  // an end-user id for the caller's own records
  fields.refuse_unknown();
  return request;
}

GenerationRequest parse_tgi_request(std::string_view body) {
  const json root = parse_object(body, 422);
  Fields fields(root, 422);
  GenerationRequest request;
  const json* inputs = fields.get("inputs");
  if (inputs == nullptr) fields.fail("inputs", "is required");
  if (!inputs->is_string()) fields.fail("inputs", "must be a string");
  request.texts.push_back(inputs->get<std::string>());
  (void)fields.get("stream");  // TGI's clients send it; the route decides
  GenerationParams& p = request.params;
  p.max_new_tokens = kTgiDefaultMaxNewTokens;
  p.num_return_sequences = 1;  // TGI answers one sequence, whatever the model saved
  if (const json* parameters = fields.get("parameters")) {
    if (!parameters->is_object()) fields.fail("parameters", "must be an object");
    Fields given(*parameters, 422, "parameters.");
    p.max_new_tokens = given.integer("max_new_tokens", 1, std::numeric_limits<int32_t>::max())
                           .value_or(kTgiDefaultMaxNewTokens);
    p.temperature = given.number("temperature", 0, 1e9, false, ">= 0");
    p.top_p = given.number("top_p", 0, 1, true, "in (0, 1]");
    p.top_k = given.integer("top_k", 0, std::numeric_limits<int32_t>::max());
    p.repetition_penalty = given.number("repetition_penalty", 0, 1e9, true, "> 0");
    if (const auto seed = given.integer("seed", 0, std::numeric_limits<int64_t>::max())) {
      p.seed = static_cast<uint64_t>(*seed);
    }
    p.stop = given.stops("stop", false);
    p.do_sample = given.flag("do_sample");
    request.details = given.flag("details").value_or(false);
    request.return_full_text = given.flag("return_full_text").value_or(false);
    given.unsupported("decoder_input_details", false, "no prompt log-probabilities");
    given.unsupported("watermark", false, "no watermarking");
    given.unsupported("best_of", 1, "one sequence per request");
    given.unsupported("typical_p", json(), "no typical sampling");
    given.unsupported("truncate", json(), "a prompt longer than the context is refused");
    given.unsupported("top_n_tokens", json(), "no log-probabilities are computed");
    given.unsupported("frequency_penalty", json(), "use `repetition_penalty`");
    given.unsupported("grammar", json(), "no constrained decoding");
    given.unsupported("adapter_id", json(), "no adapters");
    given.refuse_unknown();
  }
  fields.refuse_unknown();
  return request;
}

}  // namespace tsrunner::serve
