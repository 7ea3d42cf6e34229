#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "request_parsing.h"
#include "tsrunner/generator.h"

namespace tsrunner::serve {

// A request parameter out of shape or range: OpenAI's error names it in "param".
struct ParamError : RequestError {
  ParamError(int status_code, std::string name, const std::string& message)
      : RequestError(status_code, message), param(std::move(name)) {}
  std::string param;
};

// One generation request of OpenAI's /v1/completions or TGI's /generate(_stream), parsed and
// checked for shape and ranges (not against a model: prompt lengths and vocabulary are the
// Generator's to check). No model, no LibTorch, like request_parsing.h.
struct GenerationRequest {
  std::string model;                            // empty: the default model
  std::vector<std::string> texts;               // text prompts, or
  std::vector<std::vector<int64_t>> token_ids;  // token-id prompts (then `texts` is empty)
  bool prompt_list = false;                     // OpenAI: the prompt came as a list
  GenerationParams params;
  int64_t n = 1;                  // OpenAI: choices per prompt
  bool stream = false;            // OpenAI's "stream" (TGI: the route says)
  bool include_usage = false;     // OpenAI: stream_options.include_usage
  bool details = false;           // TGI: "details"
  bool return_full_text = false;  // TGI: the prompt before the generated text
};

// POST /v1/completions (OpenAI; docs/generation.md lists the fields). Malformed JSON and every
// bad field are answered 400 as OpenAI does, naming the field (ParamError). max_tokens defaults
// to OpenAI's 16; sampling settings left out take the model's defaults.
GenerationRequest parse_completion_request(std::string_view body);

// POST /generate and /generate_stream (text-generation-inference): {"inputs": string,
// "parameters": {...}}. 400 for malformed JSON, 422 for a bad field (as TGI). max_new_tokens
// defaults to TGI's 100.
GenerationRequest parse_tgi_request(std::string_view body);

}  // namespace tsrunner::serve
