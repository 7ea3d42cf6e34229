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

// `name` is the JSON key the ids came in; the range is the manifest's input with `role`.
void check_range(const Manifest& manifest, const char* role, const char* name,
                 const std::vector<int64_t>& ids) {
  const TensorSpec* spec = manifest.find_input_by_role(role);
  if (!spec || !spec->value_range) return;
  const auto [low, high] = *spec->value_range;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < low || ids[i] >= high) {
      throw InvalidInput(std::string("\"") + name + "\"[" + std::to_string(i) +
                         "] = " + std::to_string(ids[i]) + " is outside [" + std::to_string(low) +
                         ", " + std::to_string(high) + ")");
    }
  }
}

Encoding encoding_from_ids(const Pipeline& pipeline, const json& object) {
  const Manifest& manifest = pipeline.runner().manifest();
  std::vector<int64_t> ids = integer_list(object["input_ids"], "input_ids");
  const size_t limit = manifest.shape_contract.max_sequence > 0
                           ? static_cast<size_t>(manifest.shape_contract.max_sequence)
                           : static_cast<size_t>(manifest.max_length);
  if (ids.size() > limit) {
    throw InvalidInput("\"input_ids\" has " + std::to_string(ids.size()) +
                       " tokens; the export takes at most " + std::to_string(limit));
  }
  check_range(manifest, "token_ids", "input_ids", ids);
  std::vector<int64_t> type_ids;
  if (auto it = object.find("token_type_ids"); it != object.end() && !it->is_null()) {
    type_ids = integer_list(*it, "token_type_ids");
    if (type_ids.size() != ids.size()) {
      throw InvalidInput("\"token_type_ids\" must be as long as \"input_ids\"");
    }
    check_range(manifest, "token_type_ids", "token_type_ids", type_ids);
  }
  return Encoding::from_ids(std::move(ids), std::move(type_ids));
}

std::vector<Encoding> encodings_of(const Pipeline& pipeline, const std::string& line,
                                   const std::string& tokenizer_problem, LineInput& input) {
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
    if (!tokenizer_problem.empty()) {
      throw InvalidInput("cannot tokenize \"text\": " + tokenizer_problem);
    }
    auto pair = object.find("text_pair");
    if (pair == object.end() || pair->is_null()) {
      std::vector<Encoding> encodings = pipeline.encode(text->get_ref<const std::string&>());
      input.text = text->get_ref<const std::string&>();
      return encodings;
    }
    if (!pair->is_string()) throw InvalidInput("\"text_pair\" must be a string");
    std::vector<Encoding> encodings =
        pipeline.encode(text->get_ref<const std::string&>(), pair->get_ref<const std::string&>());
    input.text = text->get_ref<const std::string&>();
    input.text_pair = pair->get_ref<const std::string&>();
    return encodings;
  }
  if (object.contains("input_ids")) return {encoding_from_ids(pipeline, object)};
  throw InvalidInput("missing \"text\" (or \"input_ids\")");
}

}  // namespace

LineInput parse_input_line(const Pipeline& pipeline, const std::string& line, size_t number,
                           const std::string& tokenizer_problem) {
  LineInput input;
  input.line = number;
  try {
    input.encodings = encodings_of(pipeline, line, tokenizer_problem, input);
  } catch (const InvalidInput& error) {
    input.encodings.clear();
    input.error = error.what();
  }
  return input;
}

}  // namespace tsrunner::cli
