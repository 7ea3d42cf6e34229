#include "input_line.h"

#include <nlohmann/json.hpp>
#include <utility>

#include "tsrunner/errors.h"

namespace tsrunner::cli {
namespace {

using nlohmann::json;

std::vector<int64_t> integer_list(const json& value, const char* key) {
  if (!value.is_array() || value.empty()) {
    throw InvalidInput(std::string("\"") + key + "\" must be a non-empty list of integers");
  }
  std::vector<int64_t> ids;
  ids.reserve(value.size());
  for (const json& item : value) {
    if (!item.is_number_integer()) {
      throw InvalidInput(std::string("\"") + key + "\" must be a non-empty list of integers");
    }
    ids.push_back(item.get<int64_t>());
  }
  return ids;
}

Encoding encoding_from_ids(const Pipeline& pipeline, const json& object) {
  std::vector<int64_t> ids = integer_list(object["input_ids"], "input_ids");
  std::vector<int64_t> type_ids;
  if (auto it = object.find("token_type_ids"); it != object.end() && !it->is_null()) {
    type_ids = integer_list(*it, "token_type_ids");
  }
  return pipeline.encoder().encode_ids(std::move(ids), std::move(type_ids));
}

// {"text": ..., "choices": [...]} for a multiple-choice export.
std::vector<Encoding> choice_encodings(const Pipeline& pipeline, const json& choices,
                                       LineInput& input) {
  if (!choices.is_array()) throw InvalidInput("\"choices\" must be a list of strings");
  std::vector<std::string_view> views;
  for (const json& choice : choices) {
    if (!choice.is_string()) throw InvalidInput("\"choices\" must be a list of strings");
    input.choices.push_back(choice.get<std::string>());
  }
  views.assign(input.choices.begin(), input.choices.end());
  return pipeline.encoder().encode_choices(input.text, views, pipeline.default_options());
}

std::vector<Encoding> encodings_of(const Pipeline& pipeline, const std::string& line,
                                   LineInput& input) {
  const json object = json::parse(line, nullptr, false);
  if (object.is_discarded()) throw InvalidInput("not valid JSON");
  if (!object.is_object()) {
    throw InvalidInput("expected a JSON object like {\"text\": \"...\"}");
  }
  if (auto id = object.find("id"); id != object.end()) {
    input.id_json = id->dump(-1, ' ', false, json::error_handler_t::replace);
  }
  if (auto text = object.find("text"); text != object.end()) {
    if (!text->is_string()) throw InvalidInput("\"text\" must be a string");
    input.text = text->get_ref<const std::string&>();
    if (auto choices = object.find("choices"); choices != object.end()) {
      return choice_encodings(pipeline, *choices, input);
    }
    auto pair = object.find("text_pair");
    if (pair == object.end() || pair->is_null()) return pipeline.encode(input.text);
    if (!pair->is_string()) throw InvalidInput("\"text_pair\" must be a string");
    input.text_pair = pair->get_ref<const std::string&>();
    return pipeline.encode(input.text, input.text_pair);
  }
  if (object.contains("input_ids")) return {encoding_from_ids(pipeline, object)};
  throw InvalidInput("missing \"text\" (or \"input_ids\")");
}

}  // namespace

LineInput parse_input_line(const Pipeline& pipeline, const std::string& line, size_t number) {
  LineInput input;
  input.line = number;
  try {
    input.encodings = encodings_of(pipeline, line, input);
  } catch (const InvalidInput& error) {
    input.encodings.clear();
    input.error = error.what();
  }
  return input;
}

}  // namespace tsrunner::cli
