#include "prediction_output.h"

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

namespace tsrunner::cli {
namespace {

using nlohmann::json;

// The shortest decimal that reads back to the same float32; null for NaN and infinity.
void append_float(std::string& out, float value) {
  if (!std::isfinite(value)) {
    out += "null";  // JSON has no NaN or infinity
    return;
  }
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  out.append(buffer, result.ptr);
}

std::string embedding_json(const std::vector<float>& embedding) {
  std::string out = "{\"embedding\":[";
  for (size_t i = 0; i < embedding.size(); ++i) {
    if (i > 0) out.push_back(',');
    append_float(out, embedding[i]);
  }
  out += "]}";
  return out;
}

// Scores go through float -> shortest text -> double so the JSON shows "0.4213", not the
// float's full double expansion.
double score(float value) {
  if (!std::isfinite(value)) return value;
  std::string text;
  append_float(text, value);
  return std::stod(text);
}

// Same keys as Python's Runner.predict (cpp/bindings/pipeline_bindings.cc).
json task_json(const Prediction& prediction) {
  json result = json::object();
  if (prediction.task == "text-classification") {
    json labels = json::array();
    for (const LabelScore& label : prediction.labels) {
      labels.push_back({{"label", label.label}, {"score", score(label.score)}});
    }
    result["labels"] = labels;
  } else if (prediction.task == "fill-mask") {
    json masks = json::array();
    for (const MaskFill& mask : prediction.masks) {
      json candidates = json::array();
      for (const TokenScore& candidate : mask.candidates) {
        candidates.push_back({{"token", candidate.id},
                              {"token_str", candidate.token},
                              {"score", score(candidate.score)}});
      }
      masks.push_back({{"position", mask.position}, {"candidates", candidates}});
    }
    result["masks"] = masks;
  } else if (prediction.task == "token-classification") {
    json entities = json::array();
    for (const Entity& entity : prediction.entities) {
      entities.push_back({{"entity_group", entity.entity_group},
                          {"score", score(entity.score)},
                          {"word", entity.word},
                          {"start", entity.span.start},
                          {"end", entity.span.end}});
    }
    result["entities"] = entities;
  } else if (prediction.task == "question-answering") {
    if (prediction.answer) {
      const Answer& answer = *prediction.answer;
      result["answer"] = {{"text", answer.text},
                          {"score", score(answer.score)},
                          {"start", answer.span.start},
                          {"end", answer.span.end}};
    } else {
      result["answer"] = nullptr;
    }
  }
  return result;
}

}  // namespace

std::string prediction_to_json(const Prediction& prediction) {
  if (prediction.task.empty() || prediction.task == "feature-extraction") {
    return embedding_json(prediction.embedding);
  }
  // Invalid UTF-8 cannot reach here (the tokenizer refuses it); replace rather than throw.
  return task_json(prediction).dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace tsrunner::cli
