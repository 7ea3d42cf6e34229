#include "tsrunner/prediction_json.h"

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

namespace tsrunner {
namespace {

using nlohmann::json;

// Written by hand: embeddings are most of the output by volume, and nlohmann would print each
// float32 widened to double with 17 digits.
void append_embedding_json(std::string& out, const std::vector<float>& embedding) {
  out += "{\"embedding\":[";
  for (size_t i = 0; i < embedding.size(); ++i) {
    if (i > 0) out.push_back(',');
    append_json_float(out, embedding[i]);
  }
  out += "]}";
}

// Scores go through float -> shortest text -> double so the JSON shows "0.4213", not the
// float's full double expansion.
double score(float value) {
  if (!std::isfinite(value)) return value;  // nlohmann writes null
  std::string text;
  append_json_float(text, value);
  return std::stod(text);
}

json labels_json(const std::vector<LabelScore>& labels) {
  json list = json::array();
  for (const LabelScore& label : labels) {
    list.push_back({{"label", label.label}, {"score", score(label.score)}});
  }
  return list;
}

json masks_json(const std::vector<MaskFill>& masks) {
  json list = json::array();
  for (const MaskFill& mask : masks) {
    json candidates = json::array();
    for (const TokenScore& candidate : mask.candidates) {
      candidates.push_back({{"token", candidate.id},
                            {"token_str", candidate.token},
                            {"score", score(candidate.score)}});
    }
    list.push_back({{"position", mask.position}, {"candidates", std::move(candidates)}});
  }
  return list;
}

json entities_json(const std::vector<Entity>& entities) {
  json list = json::array();
  for (const Entity& entity : entities) {
    list.push_back({{"entity_group", entity.entity_group},
                    {"score", score(entity.score)},
                    {"word", entity.word},
                    {"start", entity.span.start},
                    {"end", entity.span.end}});
  }
  return list;
}

json answer_json(const std::optional<Answer>& answer) {
  if (!answer) return nullptr;
  return {{"text", answer->text},
          {"score", score(answer->score)},
          {"start", answer->span.start},
          {"end", answer->span.end}};
}

json choices_json(const std::vector<ChoiceScore>& choices) {
  json list = json::array();
  for (const ChoiceScore& choice : choices) {
    list.push_back({{"choice", choice.choice}, {"score", score(choice.score)}});
  }
  return list;
}

}  // namespace

void append_json_float(std::string& out, float value) {
  if (!std::isfinite(value)) {
    out += "null";
    return;
  }
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  out.append(buffer, result.ptr);
}

void append_prediction_json(std::string& out, const Prediction& prediction) {
  json result = json::object();
  switch (prediction.task) {
    case Task::kFeatureExtraction:
      append_embedding_json(out, prediction.embedding);
      return;
    case Task::kTextClassification:
      result["labels"] = labels_json(prediction.labels);
      break;
    case Task::kFillMask:
      result["masks"] = masks_json(prediction.masks);
      break;
    case Task::kTokenClassification:
      result["entities"] = entities_json(prediction.entities);
      break;
    case Task::kQuestionAnswering:
      result["answer"] = answer_json(prediction.answer);
      break;
    case Task::kMultipleChoice:
      result["choices"] = choices_json(prediction.choices);
      result["best"] = prediction.best_choice;
      break;
    default:
      break;  // no task-aware output yet: an empty object
  }
  // Invalid UTF-8 cannot come from text (the tokenizer refuses it), but a label or token
  // string from the archive could: replace rather than throw.
  out += result.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string prediction_to_json(const Prediction& prediction) {
  std::string out;
  append_prediction_json(out, prediction);
  return out;
}

std::string predictions_to_json(const std::vector<Prediction>& predictions) {
  std::string out = "[";
  for (size_t i = 0; i < predictions.size(); ++i) {
    if (i > 0) out.push_back(',');
    append_prediction_json(out, predictions[i]);
  }
  out.push_back(']');
  return out;
}

}  // namespace tsrunner
