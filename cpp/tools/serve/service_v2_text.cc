// Text over the Open Inference Protocol: a BYTES tensor "text" (and "text_pair" where the task
// takes pairs) is tokenized with the export's own tokenizer and answered with the task's outputs,
// as /predict answers them, so Triton's and KServe's clients can send text.
#include <cstring>
#include <optional>

#include "json_text.h"
#include "request_parsing.h"
#include "service.h"
#include "service_call.h"
#include "service_v2_text.h"
#include "tsrunner/prediction_json.h"
#include "tsrunner/request_queue.h"

namespace tsrunner::serve {
namespace {

constexpr const char* kHeaderLength = "Inference-Header-Content-Length";

bool takes_pairs(const Manifest& manifest) {
  return manifest.task_kind == Task::kTextClassification ||
         manifest.task_kind == Task::kQuestionAnswering;
}

// The numeric inputs, for messages that say what to send instead of text.
std::string tensor_inputs(const Manifest& manifest) {
  std::string names;
  for (const TensorSpec& spec : manifest.inputs) {
    names += (names.empty() ? "" : ", ") + spec.name;
    if (spec.dtype != DType::kUnknown) {  // a plain module does not say
      names += " (" + std::string(dtype_name(spec.dtype)) + ")";
    }
  }
  return names;
}

// The 4-byte little-endian length before each BYTES element of the binary extension.
void append_length_prefixed(std::string& out, const std::string& text) {
  const auto size = static_cast<uint32_t>(text.size());
  const char prefix[4] = {static_cast<char>(size & 0xff), static_cast<char>((size >> 8) & 0xff),
                          static_cast<char>((size >> 16) & 0xff),
                          static_cast<char>((size >> 24) & 0xff)};
  out.append(prefix, 4);
  out += text;
}

// One output of a text request: FP32 rows or BYTES strings, one entry per input.
struct TextOutput {
  std::string name;
  std::vector<std::vector<float>> rows;  // FP32 [inputs, width]
  std::vector<std::string> strings;      // BYTES [inputs]
};

std::vector<TextOutput> text_outputs(const Manifest& manifest,
                                     const std::vector<Prediction>& predictions) {
  TextOutput prediction{"prediction", {}, {}};
  TextOutput embedding{"embedding", {}, {}};
  TextOutput scores{"scores", {}, {}};
  const bool classification = manifest.task_kind == Task::kTextClassification;
  for (const Prediction& item : predictions) {
    prediction.strings.push_back(classification ? scores_json(item.labels)
                                                : prediction_to_json(item));
    if (manifest.task_kind == Task::kFeatureExtraction) embedding.rows.push_back(item.embedding);
    if (classification) {
      std::vector<float> row(manifest.labels.size(), 0.0f);  // in the manifest's label order
      for (const LabelScore& label : item.labels) {
        for (size_t i = 0; i < manifest.labels.size(); ++i) {
          if (manifest.labels[i] == label.label) row[i] = label.score;
        }
      }
      scores.rows.push_back(std::move(row));
    }
  }
  std::vector<TextOutput> outputs;
  if (manifest.task_kind == Task::kFeatureExtraction) outputs.push_back(std::move(embedding));
  if (classification) outputs.push_back(std::move(scores));
  outputs.push_back(std::move(prediction));
  return outputs;
}

}  // namespace

std::vector<V2TextSpec> v2_text_inputs(const ServedModel& model) {
  if (!model.pipeline) return {};
  std::vector<V2TextSpec> specs = {{"text", "BYTES", {-1}}};
  if (takes_pairs(model.runner->manifest())) specs.push_back({"text_pair", "BYTES", {-1}});
  return specs;
}

std::vector<V2TextSpec> v2_text_outputs(const ServedModel& model) {
  if (!model.pipeline) return {};
  const Manifest& manifest = model.runner->manifest();
  std::vector<V2TextSpec> specs;
  if (manifest.task_kind == Task::kFeatureExtraction) {
    const int64_t width =
        manifest.sentence_embedding ? manifest.sentence_embedding->dimension : int64_t{-1};
    specs.push_back({"embedding", "FP32", {-1, width}});
  }
  if (manifest.task_kind == Task::kTextClassification) {
    specs.push_back({"scores", "FP32", {-1, static_cast<int64_t>(manifest.labels.size())}});
  }
  specs.push_back({"prediction", "BYTES", {-1}});
  return specs;
}

void Service::v2_infer_text(const std::shared_ptr<Call>& call, ServedModel& model,
                            std::shared_ptr<V2InferRequest> request) {
  const Manifest& manifest = model.runner->manifest();
  if (!model.pipeline) {
    const std::string instead =
        "; send the token ids as tensors instead: " + tensor_inputs(manifest) +
        (model.runner->has_tokenizer() ? " (POST /tokenize gives the ids)" : "");
    return call->fail(400, "model \"" + model.name + "\" takes no text (BYTES) input: " +
                               (model.runner->has_tokenizer()
                                    ? "its task (" + manifest.task + ") has no task-aware output"
                                    : std::string("it embeds no tokenizer")) +
                               instead);
  }
  const V2Tensor* text = nullptr;
  const V2Tensor* pair = nullptr;
  for (const V2Tensor& tensor : request->inputs) {
    if (tensor.datatype != "BYTES") {
      return call->fail(400, "input \"" + tensor.name +
                                 "\" is a tensor and another input is text (BYTES): send text "
                                 "inputs or tensor inputs, not both");
    }
    const V2Tensor*& slot = tensor.name == "text" ? text : pair;
    if (tensor.name != "text" && (tensor.name != "text_pair" || !takes_pairs(manifest))) {
      return call->fail(
          400,
          "unknown text input \"" + tensor.name + "\"; model \"" + model.name + "\" takes " +
              (takes_pairs(manifest) ? "\"text\" and \"text_pair\""
                                     : "\"text\" (task " + manifest.task + " takes no pairs)"));
    }
    if (slot != nullptr) return call->fail(400, "input \"" + tensor.name + "\" is given twice");
    slot = &tensor;
  }
  if (text == nullptr) return call->fail(400, "input \"text\" is missing (BYTES, one per input)");
  if (pair != nullptr && pair->strings.size() != text->strings.size()) {
    return call->fail(400, "\"text_pair\" has " + std::to_string(pair->strings.size()) +
                               " elements and \"text\" " + std::to_string(text->strings.size()) +
                               ": give one pair per text");
  }
  const std::vector<V2TextSpec> known = v2_text_outputs(model);
  for (const std::string& name : request->outputs) {
    bool found = false;
    for (const V2TextSpec& spec : known) found = found || spec.name == name;
    if (!found) {
      std::string names;
      for (const V2TextSpec& spec : known) names += (names.empty() ? "" : ", ") + spec.name;
      return call->fail(
          400, "unknown output \"" + name + "\" for text input; this model answers " + names);
    }
  }
  try {
    check_batch_size(text->strings.size(), limits_.max_client_batch_size);
  } catch (const RequestError& error) {
    return call->fail(400, error.what());
  }
  if (text->strings.empty()) return call->fail(400, "input \"text\" holds no elements");
  if (!admit(call)) return;
  QueueSubmission submission;
  for (size_t i = 0; i < text->strings.size(); ++i) {
    std::optional<std::string> pair_text;
    if (pair != nullptr) pair_text = pair->strings[i];
    try {
      submission.inputs.push_back(encode_input(*model.pipeline,
                                               "input \"text\"[" + std::to_string(i) + "]",
                                               text->strings[i], pair_text, submission.options));
    } catch (const RequestError& error) {
      return call->fail(400, error.what());  // the protocol answers bad input with 400
    }
    submission.texts.push_back(text->strings[i]);
    if (pair != nullptr) submission.pairs.push_back(pair->strings[i]);
  }
  submission.done = [call, request, &model, this](QueueOutcome outcome) {
    if (!outcome.error.empty()) return call->fail(outcome.invalid_input ? 400 : 500, outcome.error);
    metrics_.add_input_tokens(outcome.tokens);
    std::vector<TextOutput> outputs = text_outputs(model.runner->manifest(), outcome.predictions);
    std::vector<std::pair<const TextOutput*, bool>> answered;  // (output, binary)
    if (request->outputs.empty()) {
      for (const TextOutput& output : outputs)
        answered.emplace_back(&output, request->binary_by_default);
    } else {
      for (size_t i = 0; i < request->outputs.size(); ++i) {
        for (const TextOutput& output : outputs) {
          if (output.name == request->outputs[i]) {
            answered.emplace_back(&output, request->binary_outputs[i]);
          }
        }
      }
    }
    std::string body = v2_answer_head(model.name, request->id);
    std::string blobs;
    bool any_binary = false;
    for (size_t i = 0; i < answered.size(); ++i) {
      const auto& [output, binary] = answered[i];
      const bool strings = output->rows.empty();
      const size_t count = strings ? output->strings.size() : output->rows.size();
      const size_t width = strings ? 0 : output->rows.front().size();
      body += i > 0 ? ",{\"name\":" : "{\"name\":";
      append_string(body, output->name);
      body += strings ? ",\"datatype\":\"BYTES\",\"shape\":[" + std::to_string(count) + "]"
                      : ",\"datatype\":\"FP32\",\"shape\":[" + std::to_string(count) + "," +
                            std::to_string(width) + "]";
      if (binary) {
        any_binary = true;
        const size_t before = blobs.size();
        if (strings) {
          for (const std::string& text : output->strings) append_length_prefixed(blobs, text);
        } else {
          for (const std::vector<float>& row : output->rows) {
            blobs.append(reinterpret_cast<const char*>(row.data()), row.size() * sizeof(float));
          }
        }
        body +=
            ",\"parameters\":{\"binary_data_size\":" + std::to_string(blobs.size() - before) + "}}";
        continue;
      }
      body += ",\"data\":[";
      for (size_t r = 0; r < count; ++r) {
        if (r > 0) body += ",";
        if (strings) {
          append_string(body, output->strings[r]);
          continue;
        }
        for (size_t c = 0; c < width; ++c) {
          if (c > 0) body += ",";
          append_float(body, output->rows[r][c]);
        }
      }
      body += "]}";
    }
    body += "]}";
    if (!any_binary) return call->answer_json(std::move(body));
    HttpResponse response{200, "application/octet-stream", body + blobs, {}};
    response.headers.emplace_back(kHeaderLength, std::to_string(body.size()));
    call->answer(std::move(response));
  };
  submission.model = static_cast<size_t>(&model - models_.data());
  queue_.submit(std::move(submission));
}

}  // namespace tsrunner::serve
