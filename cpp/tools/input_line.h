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
  std::string text, text_pair;  // the line's texts (empty for token ids): answers quote them
  std::string id_json;          // the line's "id" field as JSON, copied to its answer; or empty
};

// Parses one JSON line: {"text": ..., "text_pair": ...} (tokenized by the pipeline) or
// {"input_ids": [...], "token_type_ids": [...]} (checked against the manifest). A bad line
// (invalid JSON, no text or ids, wrong types, ids out of range, too long) comes back with
// no encodings and `error` saying why. When `tokenizer_problem` is not empty the pipeline cannot
// tokenize: a line with text gets that reason as its error.
LineInput parse_input_line(const Pipeline& pipeline, const std::string& line, size_t number,
                           const std::string& tokenizer_problem = {});

}  // namespace tsrunner::cli
