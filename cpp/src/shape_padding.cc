#include "shape_padding.h"

#include <ATen/ATen.h>

namespace tsrunner::detail {
namespace {

// Dimensions that the trace fixed and that padding can fill; batch and choices are never padded.
bool is_length(const std::string& symbol) { return symbol != "batch" && symbol != "choices"; }

int64_t pad_value(const Manifest& manifest, const TensorSpec& spec) {
  const bool token_ids =
      spec.role == Role::kTokenIds || spec.role == Role::kDecoderTokenIds ||
      (spec.role == Role::kNone && spec.name.find("input_ids") != std::string::npos);
  return token_ids ? manifest.pad_token_id.value_or(0) : 0;
}

}  // namespace

int64_t choose_bucket(const Manifest& manifest, const std::vector<at::Tensor>& inputs) {
  const std::vector<int64_t>& buckets = manifest.shape_contract.buckets;
  if (buckets.empty()) return 0;
  int64_t length = 0;
  for (size_t i = 0; i < inputs.size() && i < manifest.inputs.size(); ++i) {
    const std::vector<Dim>& dims = manifest.inputs[i].dims;
    for (size_t d = 0; d < dims.size(); ++d) {
      if (dims[d].symbol == "sequence") length = inputs[i].size(static_cast<int64_t>(d));
    }
  }
  for (int64_t bucket : buckets) {
    if (bucket >= length) return bucket;
  }
  return buckets.back();  // longer inputs were refused by the contract check
}

CallerLengths pad_to_traced_lengths(const Manifest& manifest, std::vector<at::Tensor>& inputs,
                                    int64_t sequence_length) {
  CallerLengths lengths;
  ShapeContract contract = manifest.shape_contract;
  if (contract.kind != ShapeKind::kFixed) return lengths;
  if (sequence_length > 0) contract.traced["sequence"] = sequence_length;
  for (size_t i = 0; i < inputs.size() && i < manifest.inputs.size(); ++i) {
    const TensorSpec& spec = manifest.inputs[i];
    for (size_t d = 0; d < spec.dims.size(); ++d) {
      const Dim& dim = spec.dims[d];
      if (!dim.is_symbolic() || !is_length(dim.symbol)) continue;
      auto traced = contract.traced.find(dim.symbol);
      if (traced == contract.traced.end()) continue;
      const auto axis = static_cast<int64_t>(d);
      const int64_t size = inputs[i].size(axis);
      if (size >= traced->second) continue;
      std::vector<int64_t> shape = inputs[i].sizes().vec();
      shape[d] = traced->second;
      at::Tensor padded = at::full(shape, pad_value(manifest, spec), inputs[i].options());
      padded.narrow(axis, 0, size).copy_(inputs[i]);
      inputs[i] = padded;
      lengths[dim.symbol] = size;
    }
  }
  return lengths;
}

void slice_to_caller_lengths(const Manifest& manifest, const CallerLengths& lengths,
                             std::vector<at::Tensor>& outputs) {
  if (lengths.empty()) return;
  for (size_t i = 0; i < outputs.size() && i < manifest.outputs.size(); ++i) {
    const TensorSpec& spec = manifest.outputs[i];
    for (size_t d = 0; d < spec.dims.size() && d < static_cast<size_t>(outputs[i].dim()); ++d) {
      auto length = lengths.find(spec.dims[d].symbol);
      if (length == lengths.end()) continue;
      // contiguous(): callers (and the bindings) get plain row-major tensors, not views.
      outputs[i] = outputs[i].narrow(static_cast<int64_t>(d), 0, length->second).contiguous();
    }
  }
}

}  // namespace tsrunner::detail
