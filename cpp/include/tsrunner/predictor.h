#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tsrunner/export.h"
#include "tsrunner/prediction.h"
#include "tsrunner/runner.h"
#include "tsrunner/tokenizer.h"

namespace tsrunner {

// The second half of the request path: one batch of padded encodings runs through the model and
// its outputs become the task's answers (prediction.h), with the task options of this call
// (nothing keyed on options is kept): feature-extraction (the model's "sentence_embedding"
// output when the export has one, else mean or CLS pooling of its first output as the
// manifest's "pooling" says), text-classification, fill-mask, token-classification,
// question-answering and multiple-choice, each as Hugging Face computes it. Model inputs are
// found by the manifest's input roles, outputs by its output names. Thread-safe like Runner.
class TSR_API Predictor {
 public:
  // `runner` must outlive the predictor. `tokenizer` (may be null) names the tokens of
  // fill-mask and token-classification answers. Throws Error when the export's task has no
  // task-aware output, or its inputs cannot be made from encodings.
  Predictor(const Runner& runner, std::shared_ptr<const Tokenizer> tokenizer);

  // Throws InvalidInput for options this export cannot take (an unknown score function,
  // normalize=false on an export that normalises inside its graph, ...).
  void check(const TaskOptions& options) const;

  // One prediction per encoding (all padded to one length). `texts` and `pairs` are the texts
  // they came from (each empty or one per encoding): entity words, answers and character
  // offsets are taken from them.
  std::vector<Prediction> predict(const std::vector<Encoding>& batch,
                                  const std::vector<std::string_view>& texts,
                                  const std::vector<std::string_view>& pairs,
                                  const TaskOptions& options) const;

  // multiple-choice: one prediction per question, each given as the encodings of its choices
  // (InputEncoder::encode_choices); every question of the batch has the same number of choices
  // and every encoding the same padded length, so they run as one [questions, choices, length]
  // call. Scores are the softmax over each question's choices; Prediction::choices[i].choice is
  // left empty (the caller has the choice texts).
  std::vector<Prediction> predict_choices(const std::vector<std::vector<Encoding>>& questions,
                                          const TaskOptions& options) const;

 private:
  const Tokenizer& tokenizer(const char* why) const;

  const Runner& runner_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  // Manifest inputs fed from each Encoding field, by role ("" when the export has none).
  std::string token_ids_input_;
  std::string attention_mask_input_;
  std::string token_type_ids_input_;
  // The manifest outputs the task reads, in the order predict() reads them.
  std::vector<std::string> task_outputs_;
  // feature-extraction: the model computes the sentence vector itself ("sentence_embedding").
  bool embedding_from_model_ = false;
  PoolingMode pooling_mode_ = PoolingMode::kMean;
  bool normalize_ = false;            // the manifest's pooling normalises
  bool normalized_in_graph_ = false;  // a sentence-transformers Normalize module in the graph
};

}  // namespace tsrunner
