// OpenAI's /v1/completions (and /v1/chat/completions' refusal) over a generation export's
// Generator: docs/serve.md, "Generation".
#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>
#include <random>

#include "body_stream.h"
#include "completion_parsing.h"
#include "service.h"
#include "service_call.h"
#include "tsrunner/errors.h"
#include "tsrunner/tokenizer.h"

namespace tsrunner::serve {
namespace {

using nlohmann::ordered_json;

// JSON text with invalid UTF-8 replaced (a tokenizer's lossy decode should give none).
std::string dump(const ordered_json& value) {
  return value.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

std::string completion_id() {
  static thread_local std::mt19937_64 random{std::random_device{}()};
  char hex[25];
  std::snprintf(hex, sizeof(hex), "%016llx%08llx", static_cast<unsigned long long>(random()),
                static_cast<unsigned long long>(random() & 0xffffffffu));
  return std::string("cmpl-") + hex;
}

// OpenAI's reasons: "stop" (EOS or a stop string) or "length".
const char* openai_finish(const std::string& reason) {
  return reason == "length" ? "length" : "stop";
}

ordered_json usage_json(size_t prompt_tokens, size_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

// What every streamed chunk of one request shares.
struct StreamState {
  std::string id;
  int64_t created = 0;
  std::string model;
  bool include_usage = false;
  std::shared_ptr<BodyStream> body;
};

std::string chunk_event(const StreamState& state, ordered_json choices, const ordered_json& usage) {
  ordered_json chunk = {{"id", state.id},
                        {"object", "text_completion"},
                        {"created", state.created},
                        {"model", state.model},
                        {"choices", std::move(choices)}};
  if (state.include_usage) chunk["usage"] = usage;
  return "data: " + dump(chunk) + "\n\n";
}

}  // namespace

std::string routes_for(const ServedModel& model) {
  if (model.generator) return "/v1/completions, /generate or /generate_stream";
  const Manifest& manifest = model.runner->manifest();
  if (model.pipeline && manifest.task_kind == Task::kFeatureExtraction) {
    return "/v1/embeddings or /embed";
  }
  if (model.pipeline && manifest.task_kind == Task::kTextClassification) {
    return manifest.labels.size() == 1 ? "/rerank or /predict" : "/predict";
  }
  if (model.pipeline) return "/predict";
  return "/v2/models/" + model.name + "/infer";
}

ServedModel& Service::generation_model(const std::shared_ptr<Call>& call, const std::string& name) {
  ServedModel* model = &models_.front();
  if (!name.empty()) {
    model = find_model(name);
    if (model == nullptr) throw ParamError(404, "model", "The model `" + name + "` does not exist");
  }
  if (!model->generator) {
    const std::string task = model->runner->manifest().task;
    const std::string message =
        "model \"" + model->name + "\" does not generate (task " + task +
        (task == "causal-lm" ? ", exported without generation methods" : "") + "); use " +
        routes_for(*model);
    throw ParamError(call->shape == ErrorShape::kOpenAI ? 400 : 422, "model", message);
  }
  return *model;
}

std::vector<std::vector<int64_t>> Service::encode_prompts(const std::shared_ptr<Call>& call,
                                                          const ServedModel& model,
                                                          const std::vector<std::string>& texts) {
  const int invalid = call->shape == ErrorShape::kOpenAI ? 400 : 422;
  const std::string field = call->shape == ErrorShape::kOpenAI ? "prompt" : "inputs";
  if (!texts.empty() && !model.runner->has_tokenizer()) {
    throw ParamError(invalid, field,
                     "model \"" + model.name + "\" has no tokenizer: send token ids");
  }
  std::vector<std::vector<int64_t>> ids;
  for (const std::string& text : texts) {
    try {
      ids.push_back(model.runner->tokenizer().encode(text).ids);
    } catch (const InvalidInput& error) {
      throw ParamError(invalid, field, "`" + field + "`: " + error.what());
    }
  }
  return ids;
}

void Service::completions(const std::shared_ptr<Call>& call) {
  try {
    GenerationRequest request = parse_completion_request(call->request.body);
    ServedModel& model = generation_model(call, request.model);
    std::vector<std::vector<int64_t>> prompts = request.texts.empty()
                                                    ? std::move(request.token_ids)
                                                    : encode_prompts(call, model, request.texts);
    // Choice index = prompt * n + j, as OpenAI orders them; choice j of a seeded request draws
    // with seed + j (the same seed would repeat one sample n times).
    GenerationJob job;
    const auto n = static_cast<size_t>(request.n);
    size_t prompt_tokens = 0;
    for (const auto& prompt : prompts) {
      prompt_tokens += prompt.size();
      for (size_t j = 0; j < n; ++j) {
        GenerationParams params = request.params;
        if (params.seed) params.seed = *params.seed + j;
        job.prompts.push_back(prompt);
        job.params.push_back(std::move(params));
      }
    }
    if (!admit(call)) return;
    auto state = std::make_shared<StreamState>();
    state->id = completion_id();
    state->created = static_cast<int64_t>(std::time(nullptr));
    state->model = model.name;
    state->include_usage = request.include_usage;
    if (request.stream) {
      state->body = std::make_shared<BodyStream>();
      job.on_chunk = [state](size_t index, const GenerationChunk& chunk) {
        if (chunk.text.empty() && !chunk.finished) return !state->body->client_gone();
        ordered_json choice = {{"index", index},
                               {"text", chunk.text},
                               {"logprobs", nullptr},
                               {"finish_reason", nullptr}};
        if (chunk.finished) choice["finish_reason"] = openai_finish(chunk.finish_reason);
        return state->body->push(chunk_event(*state, ordered_json::array({choice}), nullptr));
      };
    }
    job.on_done = [this, call, state, prompt_tokens](std::vector<GenerationResult> results,
                                                     std::exception_ptr error) {
      size_t completion_tokens = 0;
      for (const GenerationResult& result : results) completion_tokens += result.token_ids.size();
      std::string message;
      if (error) {
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& failure) {
          message = failure.what();
        }
      }
      if (state->body) {  // the stream's end; its answer (the header) went out at the start
        if (error) {
          state->body->push("data: " + error_response(ErrorShape::kOpenAI, 500, message).body +
                            "\n\n");
        } else if (state->include_usage) {
          state->body->push(chunk_event(*state, ordered_json::array(),
                                        usage_json(prompt_tokens, completion_tokens)));
        }
        state->body->push("data: [DONE]\n\n");
        state->body->close();
        --model_requests_;  // admitted until the stream ends (see below)
        return;
      }
      if (error) return call->fail(500, message);
      ordered_json choices = ordered_json::array();
      for (size_t i = 0; i < results.size(); ++i) {
        choices.push_back({{"index", i},
                           {"text", results[i].text},
                           {"logprobs", nullptr},
                           {"finish_reason", openai_finish(results[i].finish_reason)}});
      }
      const ordered_json answer = {{"id", state->id},
                                   {"object", "text_completion"},
                                   {"created", state->created},
                                   {"model", state->model},
                                   {"choices", std::move(choices)},
                                   {"usage", usage_json(prompt_tokens, completion_tokens)}};
      call->answer_json(dump(answer));
    };
    // A stream holds its admission until it ends (on_done releases it), not until its header.
    if (state->body) call->admitted = false;
    try {
      jobs_.start(*model.generator, std::move(job));
    } catch (const InvalidInput& error) {
      if (state->body) --model_requests_;
      const std::string text = error.what();
      throw ParamError(400, text.find("prompt") != std::string::npos ? "prompt" : "", text);
    }
    if (state->body) {
      call->answer({200, "text/event-stream", "", {{"Cache-Control", "no-cache"}}, state->body});
    }
  } catch (const ParamError& error) {
    call->answer(error_response(ErrorShape::kOpenAI, error.status, error.what(), error.param));
  }
}

void Service::chat_completions(const std::shared_ptr<Call>& call) {
  // Chat templates are Jinja programs (tokenizer_config.json's chat_template); no C++ Jinja
  // implementation is packaged by Debian or PyPI, so tsrun serve does not render them. 501 with
  // x-should-retry: false, so that OpenAI's client reports it at once instead of retrying.
  HttpResponse response = error_response(
      ErrorShape::kOpenAI, 501,
      "/v1/chat/completions is not implemented: chat templates are Jinja programs and no C++ "
      "Jinja implementation is packaged (Debian, PyPI); render the template client-side (e.g. "
      "transformers' apply_chat_template) and send the text to /v1/completions",
      "messages");
  response.headers.emplace_back("x-should-retry", "false");
  call->answer(std::move(response));
}

}  // namespace tsrunner::serve
