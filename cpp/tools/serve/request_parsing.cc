#include "request_parsing.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

namespace tsrunner::serve {
namespace {

using nlohmann::json;

constexpr int kMalformed = 400;
constexpr int kInvalid = 422;

json parse_object(std::string_view body) {
  json root;
  try {
    root = json::parse(body.begin(), body.end());
  } catch (const json::parse_error& error) {
    // Say where without echoing the body.
    throw RequestError(kMalformed, "malformed JSON at byte " + std::to_string(error.byte));
  } catch (const json::exception& error) {  // a number out of range (1e309), for example
    throw RequestError(kMalformed, std::string("malformed JSON: ") + error.what());
  }
  if (!root.is_object()) throw RequestError(kInvalid, "the request body must be a JSON object");
  return root;
}

const json* field(const json& root, const char* name) {
  auto it = root.find(name);
  return it == root.end() || it->is_null() ? nullptr : &*it;
}

const json& required(const json& root, const char* name, int status = kInvalid) {
  const json* value = field(root, name);
  if (value == nullptr) throw RequestError(status, std::string("missing field `") + name + "`");
  return *value;
}

bool flag(const json& root, const char* name, bool fallback) {
  const json* value = field(root, name);
  if (value == nullptr) return fallback;
  if (!value->is_boolean()) {
    throw RequestError(kInvalid, std::string("`") + name + "` must be true or false");
  }
  return value->get<bool>();
}

std::string string_field(const json& value, const std::string& what, int status = kInvalid) {
  if (!value.is_string()) throw RequestError(status, what + " must be a string");
  return value.get<std::string>();
}

// TEI's "prompt_name": a string, or null/absent (the model's default prompt, if any).
std::optional<std::string> prompt_name(const json& root) {
  const json* value = field(root, "prompt_name");
  if (value == nullptr) return std::nullopt;
  return string_field(*value, "`prompt_name`");
}

// A string or a non-empty list of strings.
std::vector<std::string> texts(const json& value, const char* name, bool& batch) {
  const std::string what = std::string("`") + name + "`";
  if (value.is_string()) {
    batch = false;
    return {value.get<std::string>()};
  }
  if (!value.is_array()) throw RequestError(kInvalid, what + " must be a string or a list of them");
  if (value.empty()) throw RequestError(kInvalid, what + " cannot be empty");
  batch = true;
  std::vector<std::string> result;
  result.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    result.push_back(
        string_field(value[i], std::string("`") + name + "[" + std::to_string(i) + "]`"));
  }
  return result;
}

TextInput sequence(const json& value, const std::string& what) {
  if (!value.is_array() || value.empty() || value.size() > 2) {
    throw RequestError(kInvalid, what + " must be [text] or [text, pair]");
  }
  TextInput input{string_field(value[0], what + "[0]"), std::nullopt};
  if (value.size() == 2) input.pair = string_field(value[1], what + "[1]");
  return input;
}

}  // namespace

EmbedRequest parse_embed_request(std::string_view body) {
  const json root = parse_object(body);
  EmbedRequest request;
  request.inputs = texts(required(root, "inputs"), "inputs", request.batch);
  request.normalize = flag(root, "normalize", true);
  request.truncate = flag(root, "truncate", false);
  request.prompt_name = prompt_name(root);
  return request;
}

PredictRequest parse_predict_request(std::string_view body) {
  const json root = parse_object(body);
  PredictRequest request;
  const json& inputs = required(root, "inputs");
  if (inputs.is_string()) {
    request.inputs.push_back({inputs.get<std::string>(), std::nullopt});
  } else if (inputs.is_array() && !inputs.empty() && inputs[0].is_string()) {
    // TEI's reading: a list of strings is one input, a text and its pair.
    request.inputs.push_back(sequence(inputs, "`inputs`"));
  } else if (inputs.is_array() && !inputs.empty()) {
    request.batch = true;
    for (size_t i = 0; i < inputs.size(); ++i) {
      request.inputs.push_back(sequence(inputs[i], "`inputs[" + std::to_string(i) + "]`"));
    }
  } else {
    throw RequestError(kInvalid,
                       "`inputs` must be a string, a pair [text, pair] or a list of [text] and "
                       "[text, pair]");
  }
  request.truncate = flag(root, "truncate", false);
  request.raw_scores = flag(root, "raw_scores", false);
  if (auto choices = root.find("choices"); choices != root.end() && !choices->is_null()) {
    // multiple-choice: a list of strings for one input, a list of such lists for a batch.
    const bool lists = choices->is_array() && !choices->empty() && (*choices)[0].is_array();
    if (request.batch != lists || !choices->is_array()) {
      throw RequestError(kInvalid, request.batch ? "`choices` must be one list of strings per input"
                                                 : "`choices` must be a list of strings");
    }
    if (lists && choices->size() != request.inputs.size()) {
      throw RequestError(kInvalid, "`choices` has " + std::to_string(choices->size()) +
                                       " lists for " + std::to_string(request.inputs.size()) +
                                       " inputs");
    }
    for (size_t i = 0; i < (lists ? choices->size() : 1); ++i) {
      const json& list = lists ? (*choices)[i] : *choices;
      const std::string what = lists ? "`choices[" + std::to_string(i) + "]`" : "`choices`";
      bool batch = false;
      request.choices.push_back(texts(list, what.substr(1, what.size() - 2).c_str(), batch));
      if (!batch) throw RequestError(kInvalid, what + " must be a list of strings");
    }
  }
  return request;
}

RerankRequest parse_rerank_request(std::string_view body) {
  const json root = parse_object(body);
  RerankRequest request;
  request.query = string_field(required(root, "query"), "`query`");
  bool list = false;
  request.texts = texts(required(root, "texts"), "texts", list);
  if (!list) throw RequestError(kInvalid, "`texts` must be a list of strings");
  request.return_text = flag(root, "return_text", false);
  request.truncate = flag(root, "truncate", false);
  request.raw_scores = flag(root, "raw_scores", false);
  return request;
}

TokenizeRequest parse_tokenize_request(std::string_view body) {
  const json root = parse_object(body);
  TokenizeRequest request;
  bool batch = false;
  request.inputs = texts(required(root, "inputs"), "inputs", batch);
  request.add_special_tokens = flag(root, "add_special_tokens", true);
  return request;
}

namespace {

std::vector<int64_t> token_ids(const json& list, const std::string& what) {
  if (!list.is_array() || list.empty()) {
    throw RequestError(kInvalid, what + " must be a non-empty list of token ids");
  }
  std::vector<int64_t> ids;
  ids.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const json& id = list[i];
    const bool fits =
        id.is_number_integer() &&
        !(id.is_number_unsigned() &&
          id.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
    if (!fits) {
      throw RequestError(kInvalid,
                         what + "[" + std::to_string(i) + "] must be an integer token id");
    }
    ids.push_back(id.get<int64_t>());
  }
  return ids;
}

// OpenAI's token inputs: one list of token ids, or a list of them (one input each).
std::vector<std::vector<int64_t>> token_id_inputs(const json& input) {
  if (!input[0].is_array()) return {token_ids(input, "`input`")};
  std::vector<std::vector<int64_t>> inputs;
  inputs.reserve(input.size());
  for (size_t i = 0; i < input.size(); ++i) {
    inputs.push_back(token_ids(input[i], "`input[" + std::to_string(i) + "]`"));
  }
  return inputs;
}

}  // namespace

OpenAIEmbeddingRequest parse_openai_embedding_request(std::string_view body) {
  const json root = parse_object(body);
  OpenAIEmbeddingRequest request;
  const json& input = required(root, "input");
  if (input.is_array() && !input.empty() && !input[0].is_string()) {
    request.token_ids = token_id_inputs(input);
  } else {
    bool batch = false;
    request.inputs = texts(input, "input", batch);
  }
  if (const json* model = field(root, "model")) request.model = string_field(*model, "`model`");
  if (const json* format = field(root, "encoding_format")) {
    const std::string name = string_field(*format, "`encoding_format`");
    if (name != "float" && name != "base64") {
      throw RequestError(kInvalid, "`encoding_format` must be \"float\" or \"base64\"");
    }
    request.base64 = name == "base64";
  }
  request.prompt_name = prompt_name(root);
  if (field(root, "dimensions") != nullptr) {
    throw RequestError(kInvalid, "`dimensions` is not supported: the model's width is fixed");
  }
  return request;
}

size_t v2_element_size(std::string_view datatype) {
  if (datatype == "BOOL" || datatype == "INT8" || datatype == "UINT8") return 1;
  if (datatype == "INT16" || datatype == "UINT16" || datatype == "FP16" || datatype == "BF16") {
    return 2;
  }
  if (datatype == "INT32" || datatype == "UINT32" || datatype == "FP32") return 4;
  if (datatype == "INT64" || datatype == "UINT64" || datatype == "FP64") return 8;
  return 0;
}

namespace {

template <typename T>
void append_value(std::string& bytes, T value) {
  char raw[sizeof(T)];
  std::memcpy(raw, &value, sizeof(T));
  bytes.append(raw, sizeof(T));
}

// JSON "data" (flat or nested, row-major) to raw little-endian elements.
// Nested lists deeper than any tensor's rank are refused (the recursion stays shallow).
constexpr int kMaxDataDepth = 32;

void append_json_elements(std::string& bytes, const json& data, const std::string& datatype,
                          const std::string& what, int depth = 0) {
  if (data.is_array()) {
    if (depth >= kMaxDataDepth) throw RequestError(kMalformed, what + ": data nested too deep");
    for (const json& element : data) {
      append_json_elements(bytes, element, datatype, what, depth + 1);
    }
    return;
  }
  if (datatype == "BOOL") {
    if (!data.is_boolean()) throw RequestError(kMalformed, what + ": BOOL data must be booleans");
    append_value<uint8_t>(bytes, data.get<bool>() ? 1 : 0);
  } else if (datatype == "FP32" || datatype == "FP64") {
    if (!data.is_number()) throw RequestError(kMalformed, what + ": data must be numbers");
    if (datatype == "FP32") {
      const auto value = data.get<double>();
      if (std::isfinite(value) && std::abs(value) > std::numeric_limits<float>::max()) {
        throw RequestError(kMalformed, what + ": a number is out of range for FP32");
      }
      append_value<float>(bytes, static_cast<float>(value));
    }
    if (datatype == "FP64") append_value<double>(bytes, data.get<double>());
  } else if (datatype == "INT64" || datatype == "INT32" || datatype == "INT16" ||
             datatype == "INT8" || datatype == "UINT8") {
    if (!data.is_number_integer()) throw RequestError(kMalformed, what + ": data must be integers");
    if (data.is_number_unsigned() &&
        data.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      throw RequestError(kMalformed, what + ": an integer is out of range for " + datatype);
    }
    const auto value = data.get<int64_t>();
    const size_t size = v2_element_size(datatype);
    const int64_t low = datatype == "UINT8" ? 0
                        : size == 8         ? std::numeric_limits<int64_t>::min()
                                            : -(int64_t{1} << (size * 8 - 1));
    const int64_t high = datatype == "UINT8" ? 255
                         : size == 8         ? std::numeric_limits<int64_t>::max()
                                             : (int64_t{1} << (size * 8 - 1)) - 1;
    if (value < low || value > high) {
      throw RequestError(kMalformed,
                         what + ": " + std::to_string(value) + " is out of range for " + datatype);
    }
    if (size == 8) append_value<int64_t>(bytes, value);
    if (size == 4) append_value<int32_t>(bytes, static_cast<int32_t>(value));
    if (size == 2) append_value<int16_t>(bytes, static_cast<int16_t>(value));
    if (size == 1) append_value<uint8_t>(bytes, static_cast<uint8_t>(value));
  } else {
    throw RequestError(kMalformed, what + ": " + datatype + " data must use the binary extension");
  }
}

// BYTES "data": strings (flat or nested, row-major).
void append_json_strings(std::vector<std::string>& strings, const json& data,
                         const std::string& what, int depth = 0) {
  if (data.is_array()) {
    if (depth >= kMaxDataDepth) throw RequestError(kMalformed, what + ": data nested too deep");
    for (const json& element : data) append_json_strings(strings, element, what, depth + 1);
    return;
  }
  if (!data.is_string()) throw RequestError(kMalformed, what + ": BYTES data must be strings");
  strings.push_back(data.get<std::string>());
}

// BYTES in the binary extension: each element is a 4-byte little-endian length and its bytes.
std::vector<std::string> split_binary_strings(std::string_view bytes, const std::string& what) {
  std::vector<std::string> strings;
  while (!bytes.empty()) {
    if (bytes.size() < 4) {
      throw RequestError(kMalformed, what + ": BYTES data ends inside an element's length");
    }
    const auto* raw = reinterpret_cast<const unsigned char*>(bytes.data());
    const uint32_t length =
        uint32_t{raw[0]} | uint32_t{raw[1]} << 8 | uint32_t{raw[2]} << 16 | uint32_t{raw[3]} << 24;
    bytes.remove_prefix(4);
    if (length > bytes.size()) {
      throw RequestError(kMalformed, what + ": a BYTES element of " + std::to_string(length) +
                                         " bytes exceeds the data left (" +
                                         std::to_string(bytes.size()) + ")");
    }
    strings.emplace_back(bytes.substr(0, length));
    bytes.remove_prefix(length);
  }
  return strings;
}

}  // namespace

V2InferRequest parse_v2_infer_request(std::string_view body, std::optional<size_t> json_length) {
  if (json_length && *json_length > body.size()) {
    throw RequestError(kMalformed, "Inference-Header-Content-Length " +
                                       std::to_string(*json_length) + " exceeds the body (" +
                                       std::to_string(body.size()) + " bytes)");
  }
  const std::string_view header = json_length ? body.substr(0, *json_length) : body;
  std::string_view binary = json_length ? body.substr(*json_length) : std::string_view();
  json root;
  try {
    root = parse_object(header);
  } catch (const RequestError& error) {
    throw RequestError(kMalformed, error.what());  // the protocol answers 400 for both
  }
  V2InferRequest request;
  if (const json* id = field(root, "id")) request.id = string_field(*id, "`id`", kMalformed);
  const json& inputs = required(root, "inputs", kMalformed);
  if (!inputs.is_array() || inputs.empty()) {
    throw RequestError(kMalformed, "`inputs` must be a non-empty list");
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    const json& input = inputs[i];
    std::string what = "inputs[" + std::to_string(i) + "]";
    if (!input.is_object()) throw RequestError(kMalformed, what + " must be an object");
    V2Tensor tensor;
    tensor.name = string_field(required(input, "name", kMalformed), what + ".name", kMalformed);
    what = "input \"" + tensor.name + "\"";
    tensor.datatype =
        string_field(required(input, "datatype", kMalformed), what + " datatype", kMalformed);
    const bool text = tensor.datatype == "BYTES";
    const size_t element_size = text ? 1 : v2_element_size(tensor.datatype);
    if (element_size == 0) {
      throw RequestError(kMalformed, what + ": unknown datatype \"" + tensor.datatype + "\"");
    }
    const json& shape = required(input, "shape", kMalformed);
    if (!shape.is_array()) throw RequestError(kMalformed, what + ": shape must be a list");
    uint64_t elements = 1;
    for (const json& dim : shape) {
      if (!dim.is_number_integer() || dim.get<int64_t>() < 0) {
        throw RequestError(kMalformed, what + ": shape must hold sizes >= 0");
      }
      const auto size = dim.get<int64_t>();
      if (size > 0 && elements > (uint64_t{1} << 40) / static_cast<uint64_t>(size)) {
        throw RequestError(kMalformed, what + ": shape is too large");
      }
      elements *= static_cast<uint64_t>(size);
      tensor.shape.push_back(size);
    }
    const json* parameters = field(input, "parameters");
    const json* binary_size = parameters != nullptr && parameters->is_object()
                                  ? field(*parameters, "binary_data_size")
                                  : nullptr;
    if (binary_size != nullptr) {
      if (!binary_size->is_number_unsigned()) {
        throw RequestError(kMalformed, what + ": binary_data_size must be a size");
      }
      const auto size = binary_size->get<uint64_t>();
      if (size > binary.size()) {
        throw RequestError(kMalformed, what + ": binary_data_size " + std::to_string(size) +
                                           " exceeds the binary data left (" +
                                           std::to_string(binary.size()) + " bytes)");
      }
      if (text) {
        tensor.strings = split_binary_strings(binary.substr(0, size), what);
      } else {
        tensor.bytes = std::string(binary.substr(0, size));
      }
      binary.remove_prefix(size);
    } else {
      const json& data = required(input, "data", kMalformed);
      if (text) {
        append_json_strings(tensor.strings, data, what);
      } else {
        append_json_elements(tensor.bytes, data, tensor.datatype, what);
      }
    }
    if (text && tensor.strings.size() != elements) {
      throw RequestError(kMalformed, what + ": shape holds " + std::to_string(elements) +
                                         " elements but the data has " +
                                         std::to_string(tensor.strings.size()));
    }
    if (!text && tensor.bytes.size() != elements * element_size) {
      throw RequestError(kMalformed, what + ": shape holds " + std::to_string(elements) +
                                         " elements but the data has " +
                                         std::to_string(tensor.bytes.size() / element_size));
    }
    request.inputs.push_back(std::move(tensor));
  }
  if (!binary.empty()) {
    throw RequestError(kMalformed,
                       std::to_string(binary.size()) + " bytes of binary data belong to no input");
  }
  if (const json* parameters = field(root, "parameters"); parameters && parameters->is_object()) {
    if (const json* binary_output = field(*parameters, "binary_data_output")) {
      request.binary_by_default = binary_output->is_boolean() && binary_output->get<bool>();
    }
  }
  if (const json* outputs = field(root, "outputs")) {
    if (!outputs->is_array()) throw RequestError(kMalformed, "`outputs` must be a list");
    for (const json& output : *outputs) {
      if (!output.is_object()) throw RequestError(kMalformed, "each output must be an object");
      request.outputs.push_back(
          string_field(required(output, "name", kMalformed), "output name", kMalformed));
      bool binary_output = request.binary_by_default;
      if (const json* parameters = field(output, "parameters");
          parameters && parameters->is_object()) {
        if (const json* flag_value = field(*parameters, "binary_data")) {
          binary_output = flag_value->is_boolean() && flag_value->get<bool>();
        }
      }
      request.binary_outputs.push_back(binary_output);
    }
  }
  return request;
}

}  // namespace tsrunner::serve
