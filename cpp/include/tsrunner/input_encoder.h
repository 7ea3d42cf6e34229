#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tsrunner/export.h"
#include "tsrunner/manifest.h"
#include "tsrunner/prediction.h"
#include "tsrunner/tokenizer.h"

namespace tsrunner {

// The first half of the request path: what a caller sends (a text, a text pair, a question and
// its choices, or token ids) becomes the model's unpadded inputs (Encoding), by the export's
// rules: a sentence-transformers prompt before the text, truncation or its refusal
// (TaskOptions::truncate), question-answering windows, one encoding per choice. Nothing runs
// the model here: front ends encode on their own thread, then queue (RequestQueue) or predict
// (Predictor). Thread-safe; the manifest must outlive the encoder.
class TSR_API InputEncoder {
 public:
  // `tokenizer` may be null for an export without a usable one: only token ids are taken then,
  // and text is refused with `no_tokenizer_reason`.
  InputEncoder(const Manifest& manifest, std::shared_ptr<const Tokenizer> tokenizer,
               std::string no_tokenizer_reason = {});

  bool has_tokenizer() const { return tokenizer_ != nullptr; }
  // Throws InvalidInput saying why there is none (send token ids instead).
  const Tokenizer& tokenizer() const;
  std::shared_ptr<const Tokenizer> shared_tokenizer() const { return tokenizer_; }

  // Throws InvalidInput for options this export cannot take (a prompt name it does not have).
  void check(const TaskOptions& options) const;

  // One encoding for a text (and pair); for question-answering with a context too long for the
  // export, one per overlapping window of the context (TaskOptions::doc_stride).
  std::vector<Encoding> encode(std::string_view text, std::optional<std::string_view> pair,
                               const TaskOptions& options = {}) const;

  // multiple-choice: one encoding per choice, each the text paired with that choice (as
  // Transformers' *ForMultipleChoice models are trained). At least two choices.
  std::vector<Encoding> encode_choices(std::string_view text,
                                       const std::vector<std::string_view>& choices,
                                       const TaskOptions& options = {}) const;

  // Token ids as a caller tokenized them (no tokenizer needed): checked against the export's
  // value ranges and longest sequence, with a mask of ones and `type_ids` (empty: zeros).
  // `what` names the input in errors ("input_ids").
  Encoding encode_ids(std::vector<int64_t> ids, std::vector<int64_t> type_ids = {},
                      const std::string& what = "input_ids") const;

  // Pads every encoding to `length` with the tokenizer's pad id (the manifest's without one).
  void pad(std::vector<Encoding>& batch, size_t length) const;
  // The length to pad a batch to: its longest, or the fixed length of a fixed-shape export.
  size_t padded_length(size_t longest) const;

 private:
  const std::string& prompt(const TaskOptions& options) const;  // "" when none

  const Manifest& manifest_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::string no_tokenizer_reason_;
};

}  // namespace tsrunner
