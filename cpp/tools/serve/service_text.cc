// The text routes: TEI's /embed, /predict, /rerank and /tokenize, and OpenAI's /v1/embeddings.
#include "service.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>

#include "json_text.h"
#include "metrics.h"
#include "request_parsing.h"
#include "service_call.h"
#include "tsrunner/errors.h"
#include "tsrunner/prediction_json.h"
#include "tsrunner/request_queue.h"

namespace tsrunner::serve {
namespace {

// A multiple-choice input: the text paired with each of its choices; 422 naming what is wrong.
std::vector<Encoding> encode_choices(const Pipeline& pipeline, const std::string& what,
                                     const TextInput& input,
                                     const std::vector<std::string>& choices,
                                     const TaskOptions& options) {
  if (input.pair) throw RequestError(422, what + ": a multiple-choice input is one text");
  if (input.text.empty()) throw RequestError(422, what + " cannot be empty");
  const std::vector<std::string_view> views(choices.begin(), choices.end());
  try {
    return pipeline.encoder().encode_choices(input.text, views, options);
  } catch (const InvalidInput& error) {
    throw RequestError(422, what + ": " + error.what());
  }
}

// Checks `prompt_name` against an embedding model's prompts before any input is tokenized:
// a 422 naming the model's prompts for a name it lacks (nullopt: its default prompt, if any).
void check_prompt_name(const ServedModel& model, const std::optional<std::string>& prompt_name) {
  if (!prompt_name) return;
  const auto& embedding = model.runner->manifest().sentence_embedding;
  if (!embedding) {
    throw RequestError(422, "`prompt_name` \"" + *prompt_name + "\" given, but model \"" +
                                model.name +
                                "\" has no prompts (only sentence-transformers exports have them)");
  }
  try {
    embedding->prompt(*prompt_name);
  } catch (const InvalidInput& error) {
    throw RequestError(422, std::string("`prompt_name`: ") + error.what());
  }
}

// One of OpenAI's token-id inputs as an encoding, taken as it is (no special tokens added, no
// prompt, as TEI takes ids); 422 naming an id outside the model's vocabulary or an input longer
// than the model takes.
std::vector<Encoding> token_id_input(const Manifest& manifest, const std::string& what,
                                     std::vector<int64_t> ids) {
  const TensorSpec* token_ids = manifest.find_input_by_role(tsrunner::Role::kTokenIds);
  if (token_ids != nullptr && token_ids->value_range) {
    const auto [low, high] = *token_ids->value_range;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] < low || ids[i] >= high) {
        throw RequestError(422, what + "[" + std::to_string(i) + "] = " + std::to_string(ids[i]) +
                                    " is not a token id of this model (ids are in [" +
                                    std::to_string(low) + ", " + std::to_string(high) + "))");
      }
    }
  }
  if (manifest.max_length > 0 && ids.size() > static_cast<size_t>(manifest.max_length)) {
    throw RequestError(422, what + " has " + std::to_string(ids.size()) +
                                " tokens; the model takes at most " +
                                std::to_string(manifest.max_length));
  }
  return {Encoding::from_ids(std::move(ids))};
}

}  // namespace

std::vector<Encoding> encode_input(const Pipeline& pipeline, const std::string& what,
                                   const std::string& text, const std::optional<std::string>& pair,
                                   const TaskOptions& options) {
  if (text.empty() || (pair && pair->empty())) {
    throw RequestError(422, what + " cannot be empty");
  }
  std::optional<std::string_view> pair_view;
  if (pair) pair_view = *pair;
  try {
    return pipeline.encode(text, pair_view, options);
  } catch (const InvalidInput& error) {
    std::string message = what + ": " + error.what();
    if (options.truncate == false && pipeline.tokenizer().max_length() &&
        message.find("(truncate=false)") != std::string::npos) {
      message += "; send \"truncate\": true to cut it";
    }
    throw RequestError(422, message);
  }
}

std::string scores_json(const std::vector<LabelScore>& labels) {
  std::string out = "[";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out += ",";
    out += "{\"score\":";
    append_float(out, labels[i].score);
    out += ",\"label\":";
    append_string(out, labels[i].label);
    out += "}";
  }
  return out + "]";
}

namespace {

// The most texts OpenAI's embeddings endpoint takes in one request.
constexpr size_t kOpenAIMaxInputs = 2048;

}  // namespace

size_t check_batch_size(size_t count, size_t limit) {
  if (count > limit) {
    throw RequestError(422, "batch size " + std::to_string(count) +
                                " > maximum allowed batch size " + std::to_string(limit) +
                                " (--max-client-batch-size)");
  }
  return count;
}

void Service::embed(const std::shared_ptr<Call>& call) {
  ServedModel& model = models_.front();
  if (!model.pipeline || model.runner->manifest().task_kind != Task::kFeatureExtraction) {
    return call->fail(424, "model \"" + model.name + "\" is not an embedding model (task " +
                               model.runner->manifest().task + "); use " + routes_for(model));
  }
  EmbedRequest request = parse_embed_request(call->request.body);
  check_batch_size(request.inputs.size(), limits_.max_client_batch_size);
  check_prompt_name(model, request.prompt_name);
  if (!admit(call)) return;
  QueueSubmission submission;
  submission.options.truncate = request.truncate;
  submission.options.normalize = request.normalize;
  submission.options.prompt_name = request.prompt_name;
  for (size_t i = 0; i < request.inputs.size(); ++i) {
    const std::string what = request.batch ? "`inputs[" + std::to_string(i) + "]`" : "`inputs`";
    submission.inputs.push_back(
        encode_input(*model.pipeline, what, request.inputs[i], std::nullopt, submission.options));
  }
  submission.texts = std::move(request.inputs);
  submission.done = [call, this](QueueOutcome outcome) {
    if (!outcome.error.empty()) return call->fail(outcome.invalid_input ? 422 : 424, outcome.error);
    metrics_.add_input_tokens(outcome.tokens);
    std::string body = "[";
    for (size_t i = 0; i < outcome.predictions.size(); ++i) {
      if (i > 0) body += ",";
      append_float_array(body, outcome.predictions[i].embedding);
    }
    call->answer_json(body + "]");
  };
  submission.model = 0;
  queue_.submit(std::move(submission));
}

void Service::openai_embeddings(const std::shared_ptr<Call>& call) {
  OpenAIEmbeddingRequest request = parse_openai_embedding_request(call->request.body);
  size_t index = 0;
  if (!request.model.empty()) {
    ServedModel* found = find_model(request.model);
    if (found == nullptr) {
      return call->fail(404, "The model `" + request.model + "` does not exist");
    }
    index = static_cast<size_t>(found - models_.data());
  }
  ServedModel& model = models_[index];
  if (!model.pipeline || model.runner->manifest().task_kind != Task::kFeatureExtraction) {
    return call->fail(422, "model \"" + model.name + "\" is not an embedding model (task " +
                               model.runner->manifest().task + "); use " + routes_for(model));
  }
  // OpenAI's own limit, not --max-client-batch-size (TEI's): clients such as LangChain's send
  // up to 1,000 texts at once. The request queue batches them like any other inputs, and the body
  // size (--payload-limit, 413) bounds the memory a request takes.
  const size_t count = std::max(request.inputs.size(), request.token_ids.size());
  if (count > kOpenAIMaxInputs) {
    throw RequestError(422, "`input` has " + std::to_string(count) + " items; at most " +
                                std::to_string(kOpenAIMaxInputs) +
                                " per request, as in OpenAI's API");
  }
  check_prompt_name(model, request.prompt_name);
  if (!request.token_ids.empty() && request.prompt_name) {
    throw RequestError(422, "`prompt_name` applies to text; token-id inputs are taken as they are");
  }
  if (!admit(call)) return;
  QueueSubmission submission;
  // OpenAI's embeddings are unit vectors; so are these (TEI's /v1/embeddings does the same).
  submission.options.normalize = true;
  submission.options.truncate = false;  // OpenAI refuses input over the model's context
  submission.options.prompt_name = request.prompt_name;
  for (size_t i = 0; i < request.inputs.size(); ++i) {
    submission.inputs.push_back(encode_input(*model.pipeline, "`input[" + std::to_string(i) + "]`",
                                             request.inputs[i], std::nullopt, submission.options));
  }
  for (size_t i = 0; i < request.token_ids.size(); ++i) {
    const std::string what =
        request.token_ids.size() == 1 ? "`input`" : "`input[" + std::to_string(i) + "]`";
    submission.inputs.push_back(
        token_id_input(model.runner->manifest(), what, std::move(request.token_ids[i])));
  }
  submission.texts = std::move(request.inputs);
  submission.texts.resize(submission.inputs.size());  // token ids came from no text
  submission.done = [call, base64_format = request.base64, name = model.name,
                     this](QueueOutcome outcome) {
    if (!outcome.error.empty()) return call->fail(outcome.invalid_input ? 422 : 500, outcome.error);
    metrics_.add_input_tokens(outcome.tokens);
    std::string body = "{\"object\":\"list\",\"data\":[";
    for (size_t i = 0; i < outcome.predictions.size(); ++i) {
      const std::vector<float>& embedding = outcome.predictions[i].embedding;
      if (i > 0) body += ",";
      body += "{\"object\":\"embedding\",\"index\":" + std::to_string(i) + ",\"embedding\":";
      if (base64_format) {
        body += "\"" + base64(embedding.data(), embedding.size() * sizeof(float)) + "\"";
      } else {
        append_float_array(body, embedding);
      }
      body += "}";
    }
    body += "],\"model\":";
    append_string(body, name);
    body += ",\"usage\":{\"prompt_tokens\":" + std::to_string(outcome.tokens) +
            ",\"total_tokens\":" + std::to_string(outcome.tokens) + "}}";
    call->answer_json(std::move(body));
  };
  submission.model = index;
  queue_.submit(std::move(submission));
}

void Service::predict(const std::shared_ptr<Call>& call) {
  ServedModel& model = models_.front();
  if (model.generator) {
    return call->fail(424, "model \"" + model.name + "\" generates text; use " + routes_for(model));
  }
  if (!model.pipeline) {
    return call->fail(424, "model \"" + model.name + "\" has no task-aware output (task " +
                               model.runner->manifest().task + "); use /v2/models/" + model.name +
                               "/infer");
  }
  PredictRequest request = parse_predict_request(call->request.body);
  if (request.raw_scores && model.runner->manifest().task_kind != Task::kTextClassification) {
    throw RequestError(422, "`raw_scores` applies to text-classification exports only");
  }
  check_batch_size(request.inputs.size(), limits_.max_client_batch_size);
  if (!admit(call)) return;
  QueueSubmission submission;
  submission.options.truncate = request.truncate;
  if (request.raw_scores) submission.options.score_function = ScoreFunction::kNone;
  bool any_pair = false;
  for (const TextInput& input : request.inputs) any_pair = any_pair || input.pair.has_value();
  const bool multiple_choice = model.runner->manifest().task_kind == Task::kMultipleChoice;
  if (multiple_choice != !request.choices.empty()) {
    throw RequestError(422, multiple_choice
                                ? "a multiple-choice model scores each input against its "
                                  "`choices`: send them (a list of strings per input)"
                                : "`choices` apply to multiple-choice models only");
  }
  for (size_t i = 0; i < request.inputs.size(); ++i) {
    const std::string what = request.batch ? "`inputs[" + std::to_string(i) + "]`" : "`inputs`";
    if (multiple_choice) {
      submission.inputs.push_back(encode_choices(*model.pipeline, what, request.inputs[i],
                                                 request.choices[i], submission.options));
      submission.texts.push_back(std::move(request.inputs[i].text));
      submission.choices.push_back(std::move(request.choices[i]));
      continue;
    }
    submission.inputs.push_back(encode_input(*model.pipeline, what, request.inputs[i].text,
                                             request.inputs[i].pair, submission.options));
    submission.texts.push_back(std::move(request.inputs[i].text));
    if (any_pair) submission.pairs.push_back(request.inputs[i].pair.value_or(""));
  }
  const bool classification = model.runner->manifest().task_kind == Task::kTextClassification;
  submission.done = [call, classification, batch = request.batch, this](QueueOutcome outcome) {
    if (!outcome.error.empty()) return call->fail(outcome.invalid_input ? 422 : 424, outcome.error);
    metrics_.add_input_tokens(outcome.tokens);
    std::string body = batch ? "[" : "";
    for (size_t i = 0; i < outcome.predictions.size(); ++i) {
      if (i > 0) body += ",";
      body += classification ? scores_json(outcome.predictions[i].labels)
                             : prediction_to_json(outcome.predictions[i]);
    }
    call->answer_json(batch ? body + "]" : body);
  };
  submission.model = 0;
  queue_.submit(std::move(submission));
}

void Service::rerank(const std::shared_ptr<Call>& call) {
  ServedModel& model = models_.front();
  const Manifest& manifest = model.runner->manifest();
  if (!model.pipeline || manifest.task_kind != Task::kTextClassification ||
      manifest.labels.size() != 1) {
    return call->fail(424, "model \"" + model.name +
                               "\" is not a re-ranker (a text-classification export with one "
                               "label, such as a cross-encoder); use " +
                               routes_for(model));
  }
  RerankRequest request = parse_rerank_request(call->request.body);
  check_batch_size(request.texts.size(), limits_.max_client_batch_size);
  if (!admit(call)) return;
  QueueSubmission submission;
  submission.options.truncate = request.truncate;
  // raw_scores: the logits; their order is the scores' (the score function is increasing).
  if (request.raw_scores) submission.options.score_function = ScoreFunction::kNone;
  for (size_t i = 0; i < request.texts.size(); ++i) {
    submission.inputs.push_back(encode_input(*model.pipeline, "`texts[" + std::to_string(i) + "]`",
                                             request.query, request.texts[i], submission.options));
    submission.texts.push_back(request.query);
  }
  auto texts = std::make_shared<std::vector<std::string>>(std::move(request.texts));
  submission.pairs = *texts;
  submission.done = [call, texts, return_text = request.return_text, this](QueueOutcome outcome) {
    if (!outcome.error.empty()) return call->fail(outcome.invalid_input ? 422 : 424, outcome.error);
    metrics_.add_input_tokens(outcome.tokens);
    std::vector<std::pair<float, size_t>> ranks;
    for (size_t i = 0; i < outcome.predictions.size(); ++i) {
      const auto& labels = outcome.predictions[i].labels;
      ranks.emplace_back(labels.empty() ? 0.0f : labels.front().score, i);
    }
    std::stable_sort(ranks.begin(), ranks.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    std::string body = "[";
    for (size_t r = 0; r < ranks.size(); ++r) {
      if (r > 0) body += ",";
      body += "{\"index\":" + std::to_string(ranks[r].second);
      if (return_text) {
        body += ",\"text\":";
        append_string(body, (*texts)[ranks[r].second]);
      }
      body += ",\"score\":";
      append_float(body, ranks[r].first);
      body += "}";
    }
    call->answer_json(body + "]");
  };
  submission.model = 0;
  queue_.submit(std::move(submission));
}

void Service::tokenize(const std::shared_ptr<Call>& call) {
  ServedModel& model = models_.front();
  // The export's own tokenizer, whether or not its task has text routes (a generation export).
  if (!model.runner->has_tokenizer()) {
    return call->fail(424, "model \"" + model.name + "\" has no tokenizer");
  }
  TokenizeRequest request = parse_tokenize_request(call->request.body);
  check_batch_size(request.inputs.size(), limits_.max_client_batch_size);
  const Tokenizer* found = nullptr;
  try {
    found = &model.runner->tokenizer();  // the one the pipeline uses, when there is one
  } catch (const LoadError& error) {     // a tokenizer kind this build cannot read
    return call->fail(424, "model \"" + model.name + "\": " + error.what());
  }
  const Tokenizer& tokenizer = *found;
  std::string body = "[";
  for (size_t i = 0; i < request.inputs.size(); ++i) {
    const std::string& text = request.inputs[i];
    Encoding encoding;
    try {
      encoding = tokenizer.encode(text);
    } catch (const InvalidInput& error) {
      throw RequestError(422, "`inputs[" + std::to_string(i) + "]`: " + error.what());
    }
    if (i > 0) body += ",";
    body += "[";
    bool first = true;
    for (size_t t = 0; t < encoding.size(); ++t) {
      const bool special = encoding.sequence_ids[t] < 0;
      if (special && !request.add_special_tokens) continue;
      if (!first) body += ",";
      first = false;
      body += "{\"id\":" + std::to_string(encoding.ids[t]) + ",\"text\":";
      const auto [start, stop] = encoding.offsets[t];
      append_string(body, special ? std::string_view(encoding.tokens[t])
                                  : std::string_view(text).substr(start, stop - start));
      body += std::string(",\"special\":") + (special ? "true" : "false");
      if (special) {
        body += ",\"start\":null,\"stop\":null}";
      } else {
        body += ",\"start\":" + std::to_string(start) + ",\"stop\":" + std::to_string(stop) + "}";
      }
    }
    body += "]";
  }
  call->answer_json(body + "]");
}

}  // namespace tsrunner::serve
