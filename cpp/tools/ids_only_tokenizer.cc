#include "ids_only_tokenizer.h"

#include <nlohmann/json.hpp>

namespace tsrunner::cli {

Tokenizer ids_only_tokenizer(const Manifest& manifest) {
  // The smallest tokenizer.json the native loader takes: its one vocabulary entry (required
  // for the unknown token) gets an id past the model's vocabulary, so no real id is named.
  const int64_t outside_vocab = manifest.vocab_size.value_or(int64_t{1} << 31);
  const nlohmann::json tokenizer = {
      {"model",
       {{"type", "WordPiece"}, {"unk_token", "[UNK]"}, {"vocab", {{"[UNK]", outside_vocab}}}}},
      {"padding", {{"pad_id", manifest.pad_token_id.value_or(0)}}},
  };
  return Tokenizer::from_json(tokenizer.dump(), std::nullopt);
}

}  // namespace tsrunner::cli
