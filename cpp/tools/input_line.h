#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "tsrunner/pipeline.h"

namespace tsrunner::cli {

// One line of tsrun --input, parsed.
struct LineInput {
  size_t line = 0;
  std::vector<Encoding> encodings;  // empty when the line is bad; QA: one per context window
  std::string error;
  std::string text, text_pair;       // the line's texts (empty for token ids): answers quote them
  std::vector<std::string> choices;  // multiple-choice: the line's choices
  std::string id_json;  // the line's "id" field as JSON, copied to its answer; or empty
};

// Parses one JSON line: {"text": ..., "text_pair": ...} or, for a multiple-choice export,
// {"text": ..., "choices": [...]} (encoded by the pipeline's InputEncoder), or {"input_ids":
// [...], "token_type_ids": [...]} (checked against the manifest). A bad line (invalid JSON, no
// text or ids, wrong types, ids out of range, too long, text for an export without a tokenizer)
// comes back with no encodings and `error` saying why.
LineInput parse_input_line(const Pipeline& pipeline, const std::string& line, size_t number);

}  // namespace tsrunner::cli
