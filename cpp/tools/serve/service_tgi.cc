// text-generation-inference's /generate and /generate_stream over a generation export's
// Generator: docs/serve.md, "Generation".
#include <nlohmann/json.hpp>

#include "body_stream.h"
#include "completion_parsing.h"
#include "service.h"
#include "service_call.h"
#include "tsrunner/errors.h"
#include "tsrunner/tokenizer.h"

namespace tsrunner::serve {
namespace {

using nlohmann::ordered_json;

std::string dump(const ordered_json& value) {
  return value.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

// What the decoding thread learns of the one sequence of a TGI request.
struct TgiState {
  std::vector<int64_t> eos_ids;
  std::optional<uint64_t> seed;
  std::string prefix;  // the prompt's text with return_full_text, else empty
  bool details = false;
  std::shared_ptr<BodyStream> body;  // /generate_stream
  std::string text;                  // streamed so far
  size_t chunks = 0;
  int64_t last_token = -1;
};

bool is_eos(const TgiState& state, int64_t token) {
  return std::find(state.eos_ids.begin(), state.eos_ids.end(), token) != state.eos_ids.end();
}

// TGI's reasons: "eos_token", "stop_sequence" or "length".
std::string tgi_finish(const TgiState& state, const std::string& reason) {
  if (reason == "length") return "length";
  return is_eos(state, state.last_token) ? "eos_token" : "stop_sequence";
}

ordered_json seed_json(const TgiState& state) {
  return state.seed ? ordered_json(*state.seed) : ordered_json(nullptr);
}

ordered_json token_json(const TgiState& state, int64_t id, const std::string& text) {
  return {{"id", id}, {"text", text}, {"logprob", nullptr}, {"special", is_eos(state, id)}};
}

}  // namespace

void Service::tgi_generate(const std::shared_ptr<Call>& call, bool stream) {
  try {
    GenerationRequest request = parse_tgi_request(call->request.body);
    ServedModel& model = generation_model(call, "");
    GenerationJob job;
    job.prompts = encode_prompts(call, model, request.texts);
    job.params.push_back(request.params);
    auto state = std::make_shared<TgiState>();
    state->eos_ids = model.generator->defaults().eos_token_ids.value_or(std::vector<int64_t>{});
    state->seed = request.params.seed;
    state->details = request.details;
    if (request.return_full_text) state->prefix = request.texts.front();
    if (!admit(call)) return;
    if (stream) state->body = std::make_shared<BodyStream>();
    job.on_chunk = [state](size_t, const GenerationChunk& chunk) {
      ++state->chunks;
      state->last_token = chunk.token_id;
      if (!state->body) return true;
      state->text += chunk.text;
      ordered_json event = {{"index", state->chunks - 1},
                            {"token", token_json(*state, chunk.token_id, chunk.text)},
                            {"generated_text", nullptr},
                            {"details", nullptr}};
      if (chunk.finished) {
        event["generated_text"] = state->prefix + state->text;
        if (state->details) {
          event["details"] = {{"finish_reason", tgi_finish(*state, chunk.finish_reason)},
                              {"generated_tokens", state->chunks},
                              {"seed", seed_json(*state)}};
        }
      }
      return state->body->push("data:" + dump(event) + "\n\n");
    };
    const Tokenizer* tokenizer =
        model.runner->has_tokenizer() ? &model.runner->tokenizer() : nullptr;
    job.on_done = [this, call, state, tokenizer](std::vector<GenerationResult> results,
                                                 std::exception_ptr error) {
      std::string message;
      if (error) {
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& failure) {
          message = failure.what();
        }
      }
      if (state->body) {
        if (error) {
          state->body->push("data:" + error_response(ErrorShape::kTgi, 500, message).body + "\n\n");
        }
        state->body->close();
        --model_requests_;  // admitted until the stream ends
        return;
      }
      if (error) return call->fail(500, message);
      const GenerationResult& result = results.front();
      ordered_json answer = {{"generated_text", state->prefix + result.text}};
      if (state->details) {
        ordered_json tokens = ordered_json::array();
        for (const int64_t id : result.token_ids) {
          tokens.push_back(token_json(*state, id, tokenizer ? tokenizer->decode({id}, false) : ""));
        }
        const std::string reason = tgi_finish(*state, result.finish_reason);
        if (reason == "eos_token") {
          tokens.push_back(
              token_json(*state, state->last_token,
                         tokenizer ? tokenizer->decode({state->last_token}, false) : ""));
        }
        answer["details"] = {{"finish_reason", reason},
                             {"generated_tokens", tokens.size()},
                             {"seed", seed_json(*state)},
                             {"prefill", ordered_json::array()},
                             {"tokens", std::move(tokens)}};
      }
      call->answer_json(dump(answer));
    };
    if (state->body) call->admitted = false;  // released when the stream ends (on_done)
    try {
      jobs_.start(*model.generator, std::move(job));
    } catch (const InvalidInput& error) {
      if (state->body) --model_requests_;
      throw ParamError(422, "", error.what());
    }
    if (state->body) {
      call->answer({200, "text/event-stream", "", {{"Cache-Control", "no-cache"}}, state->body});
    }
  } catch (const ParamError& error) {
    call->answer(error_response(ErrorShape::kTgi, error.status, error.what()));
  }
}

}  // namespace tsrunner::serve
