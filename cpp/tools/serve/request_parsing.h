#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tsrunner::serve {

// A request the server refuses: the HTTP status and a one-line reason.
struct RequestError : std::runtime_error {
  RequestError(int status_code, const std::string& message)
      : std::runtime_error(message), status(status_code) {}
  int status;
};

// The request bodies of every route, parsed and checked for shape and types (not against a
// model). Each parser throws RequestError: 400 for malformed JSON, 422 for well-formed JSON of
// the wrong shape or types, naming the field. No model, no LibTorch: the fuzz target
// (tests/fuzz/serve_request_fuzzer.cc) runs them alone.

// One text, or a text with its pair.
struct TextInput {
  std::string text;
  std::optional<std::string> pair;
};

// POST /embed (TEI): {"inputs": string | [string], "normalize": bool, "truncate": bool,
// "prompt_name": string | null}.
struct EmbedRequest {
  std::vector<std::string> inputs;
  bool batch = false;  // inputs came as a list
  bool normalize = true;
  bool truncate = false;
  std::optional<std::string> prompt_name;  // nullopt: the model's default prompt, if any
};
EmbedRequest parse_embed_request(std::string_view body);

// POST /predict (TEI): "inputs" is a string, a pair [a, b], or a batch [[a], [a, b], ...].
// Multiple-choice exports also take "choices": a list of strings (one input) or one such list
// per input (a batch).
struct PredictRequest {
  std::vector<TextInput> inputs;
  bool batch = false;
  bool truncate = false;
  bool raw_scores = false;
  std::vector<std::vector<std::string>> choices;  // empty, or one list per input
};
PredictRequest parse_predict_request(std::string_view body);

// POST /rerank (TEI): {"query": string, "texts": [string], "return_text", "truncate",
// "raw_scores"}.
struct RerankRequest {
  std::string query;
  std::vector<std::string> texts;
  bool return_text = false;
  bool truncate = false;
  bool raw_scores = false;
};
RerankRequest parse_rerank_request(std::string_view body);

// POST /tokenize (TEI): {"inputs": string | [string], "add_special_tokens": bool}.
struct TokenizeRequest {
  std::vector<std::string> inputs;
  bool add_special_tokens = true;
};
TokenizeRequest parse_tokenize_request(std::string_view body);

// POST /v1/embeddings (OpenAI): {"input": string | [string] | [int] | [[int]], "model": string,
// "encoding_format": "float" | "base64", "dimensions", "user"}, and TEI's "prompt_name" (sent
// by OpenAI clients as an extra body field).
struct OpenAIEmbeddingRequest {
  std::vector<std::string> inputs;
  // Token-id inputs (OpenAI's and TEI's: a list of ids, or a list of such lists), when `input`
  // held ids; then `inputs` is empty.
  std::vector<std::vector<int64_t>> token_ids;
  std::string model;  // empty: the default model
  bool base64 = false;
  std::optional<std::string> prompt_name;
};
OpenAIEmbeddingRequest parse_openai_embedding_request(std::string_view body);

// POST /v2/models/{name}/infer (Open Inference Protocol). With the binary-data extension the
// body is the JSON header (`json_length` bytes, from the Inference-Header-Content-Length
// header) followed by the tensors' raw bytes, in input order.
struct V2Tensor {
  std::string name;
  std::string datatype;  // "INT64", "FP32", ...
  std::vector<int64_t> shape;
  std::string bytes;  // the elements, little-endian, row-major
  // BYTES tensors (text): the elements, row-major; `bytes` stays empty.
  std::vector<std::string> strings;
};
struct V2InferRequest {
  std::string id;
  std::vector<V2Tensor> inputs;
  std::vector<std::string> outputs;  // empty: every output
  std::vector<bool> binary_outputs;  // one per `outputs`
  bool binary_by_default = false;    // parameters.binary_data_output
};
// `json_length` nullopt: the whole body is JSON.
V2InferRequest parse_v2_infer_request(std::string_view body, std::optional<size_t> json_length);

// The byte size of one element of an Open Inference Protocol datatype; 0 when unknown.
size_t v2_element_size(std::string_view datatype);

}  // namespace tsrunner::serve
