#include "token_mode.h"

#include <nlohmann/json.hpp>
#include <optional>

#include "tsrunner/errors.h"
#include "tsrunner/manifest.h"
#include "tsrunner/tokenizer.h"

namespace tsrunner::cli {

void print_tokens(const std::string& model_path, const std::vector<std::string>& texts,
                  const std::vector<std::string>& pairs, std::ostream& out) {
  if (!pairs.empty() && pairs.size() != texts.size()) {
    throw InvalidInput("give one --text-pair per --text (got " + std::to_string(texts.size()) +
                       " texts and " + std::to_string(pairs.size()) + " pairs)");
  }
  const Manifest manifest = Manifest::read_from_archive(model_path);
  if (!manifest.has_tokenizer) {
    throw LoadError(model_path +
                    " embeds no tokenizer: --tokens needs one (pass token ids with "
                    "--ids instead)");
  }
  const Tokenizer tokenizer = Tokenizer::from_file(model_path);
  const TensorSpec* token_ids = manifest.find_input_by_role(tsrunner::Role::kTokenIds);
  if (token_ids == nullptr) throw InvalidInput("--tokens: this export takes no token ids");
  const TensorSpec* mask = manifest.find_input_by_role(tsrunner::Role::kAttentionMask);
  const TensorSpec* type_ids = manifest.find_input_by_role(tsrunner::Role::kTokenTypeIds);
  for (size_t i = 0; i < texts.size(); ++i) {
    std::optional<std::string_view> pair;
    if (!pairs.empty()) pair = pairs[i];
    const Encoding encoding = tokenizer.encode(texts[i], pair);
    nlohmann::ordered_json line;
    line[token_ids->name] = encoding.ids;
    if (mask != nullptr) line[mask->name] = encoding.attention_mask;
    if (type_ids != nullptr) line[type_ids->name] = encoding.type_ids;
    out << line.dump() << "\n";
  }
}

}  // namespace tsrunner::cli
