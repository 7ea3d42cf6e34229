#pragma once

#include <string>

#include "tsrunner/manifest.h"
#include "tsrunner/tokenizer.h"

namespace tsrunner::cli {

// Pipeline needs a Tokenizer to pad batches (with the model's pad id) and to name tokens. Lines
// of token ids need nothing else from it, so when the export's own tokenizer cannot be loaded
// (none embedded, or one this build cannot run natively) tsrun runs them with this stand-in,
// which pads with the manifest's pad_token_id and knows no tokens. tsrun never gives it text.
Tokenizer ids_only_tokenizer(const Manifest& manifest);

}  // namespace tsrunner::cli
