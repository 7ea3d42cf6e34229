#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace tsrunner::cli {

// `tsrun model.pt --text ... --tokens`: one JSON line per --text holding what the model's
// forward takes, by the manifest's input names ({"input_ids": [...], "attention_mask": [...],
// "token_type_ids": [...]} for BERT), tokenized with the export's own tokenizer and truncated to
// its max length, so `--ids ... --raw` and Runner.run users can start from text. Reads the
// manifest and tokenizer.json only: no TorchScript is loaded. `pairs` is empty or one per text.
void print_tokens(const std::string& model_path, const std::vector<std::string>& texts,
                  const std::vector<std::string>& pairs, std::ostream& out);

}  // namespace tsrunner::cli
