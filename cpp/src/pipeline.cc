#include "tsrunner/pipeline.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <numeric>

#include "tsrunner/errors.h"

namespace tsrunner {
namespace {

at::Tensor stack_field(const std::vector<Encoding>& batch, std::vector<int64_t> Encoding::* field) {
  const auto rows = static_cast<int64_t>(batch.size());
  const auto columns = static_cast<int64_t>(batch.front().size());
  at::Tensor tensor = at::empty({rows, columns}, at::kLong);
  int64_t* data = tensor.data_ptr<int64_t>();
  for (const Encoding& encoding : batch) {
    if (static_cast<int64_t>(encoding.size()) != columns) {
      throw InvalidInput("the encodings of one batch must be padded to the same length");
    }
    data = std::copy((encoding.*field).begin(), (encoding.*field).end(), data);
  }
  return tensor;
}

}  // namespace

Pipeline::Pipeline(const Runner& runner, Tokenizer tokenizer)
    : runner_(runner), tokenizer_(std::move(tokenizer)) {
  const Manifest& manifest = runner_.manifest();
  if (manifest.task != "feature-extraction") {
    throw Error("task-aware output for task \"" + manifest.task +
                "\" is not implemented yet; use raw outputs (tsrun --raw, Runner.run)");
  }
  pooling_mode_ = manifest.pooling ? manifest.pooling->mode : "mean";
  normalize_ = manifest.pooling && manifest.pooling->normalize;
  if (pooling_mode_ != "mean" && pooling_mode_ != "cls") {
    throw Error("pooling mode \"" + pooling_mode_ + "\" is not supported (mean, cls)");
  }
}

size_t Pipeline::padded_length(size_t longest) const {
  const ShapeContract& contract = runner_.manifest().shape_contract;
  if (contract.kind == "fixed" && contract.max_sequence > 0) {
    return std::max(longest, static_cast<size_t>(contract.max_sequence));
  }
  return longest;
}

std::vector<Prediction> Pipeline::predict_encoded(const std::vector<Encoding>& batch) const {
  if (batch.empty()) return {};
  const Manifest& manifest = runner_.manifest();
  const at::Tensor mask = stack_field(batch, &Encoding::attention_mask);
  TensorMap inputs{{"input_ids", stack_field(batch, &Encoding::ids)}};
  if (manifest.find_input("attention_mask")) inputs.emplace("attention_mask", mask);
  if (manifest.find_input("token_type_ids")) {
    inputs.emplace("token_type_ids", stack_field(batch, &Encoding::type_ids));
  }
  const TensorMap outputs = runner_.run(inputs);
  // The token vectors: the manifest's first output (last_hidden_state for encoders).
  const at::Tensor hidden = outputs.at(manifest.outputs.front().name).to(at::kFloat).cpu();
  at::Tensor pooled;
  if (pooling_mode_ == "cls") {
    pooled = hidden.select(1, 0);
  } else {  // mean over real tokens, as sentence-transformers computes it
    const at::Tensor weights = mask.unsqueeze(-1).to(hidden.dtype());
    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1e-9);
  }
  if (normalize_) {
    pooled = pooled / pooled.norm(2, {1}, true).clamp_min(1e-12);
  }
  pooled = pooled.contiguous();
  std::vector<Prediction> predictions(batch.size());
  const int64_t width = pooled.size(1);
  const float* data = pooled.data_ptr<float>();
  for (size_t i = 0; i < batch.size(); ++i) {
    predictions[i].embedding.assign(data + i * width, data + (i + 1) * width);
  }
  return predictions;
}

std::vector<Prediction> Pipeline::predict(const std::vector<std::string>& texts,
                                          const std::vector<std::string>& pairs,
                                          size_t batch_size) const {
  if (batch_size == 0) throw InvalidInput("batch_size must be at least 1");
  if (!pairs.empty() && pairs.size() != texts.size()) {
    throw InvalidInput("got " + std::to_string(texts.size()) + " texts but " +
                       std::to_string(pairs.size()) + " text pairs");
  }
  std::vector<Encoding> encodings;
  encodings.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    encodings.push_back(pairs.empty() ? tokenizer_.encode(texts[i])
                                      : tokenizer_.encode(texts[i], pairs[i]));
  }
  // Similar lengths together, so each batch pads little; answers go back in input order.
  std::vector<size_t> order(texts.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return encodings[a].size() < encodings[b].size(); });
  std::vector<Prediction> predictions(texts.size());
  for (size_t start = 0; start < order.size(); start += batch_size) {
    const size_t end = std::min(order.size(), start + batch_size);
    std::vector<Encoding> batch;
    size_t longest = 0;
    for (size_t k = start; k < end; ++k) {
      batch.push_back(std::move(encodings[order[k]]));
      longest = std::max(longest, batch.back().size());
    }
    tokenizer_.pad(batch, padded_length(longest));
    std::vector<Prediction> answers = predict_encoded(batch);
    for (size_t k = start; k < end; ++k) predictions[order[k]] = std::move(answers[k - start]);
  }
  return predictions;
}

}  // namespace tsrunner
