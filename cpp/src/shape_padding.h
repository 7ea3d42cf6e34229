#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tsrunner/manifest.h"

namespace tsrunner::detail {

// The caller's lengths of the dimensions that were padded, by symbol ("sequence", ...).
using CallerLengths = std::map<std::string, int64_t>;

// A fixed-shape export runs only at its traced lengths. Pads the inputs (in manifest order) up
// to them: token ids with the manifest's pad_token_id, masks and type ids with 0, so the padding
// is masked out. Returns the caller's lengths of the dimensions it padded (empty for dynamic
// exports and for inputs already at the traced length). Longer inputs were refused before.
// `sequence_length` (when positive) replaces the traced sequence length: a bucketed export pads
// to the bucket it runs.
CallerLengths pad_to_traced_lengths(const Manifest& manifest, std::vector<at::Tensor>& inputs,
                                    int64_t sequence_length = 0);

// The smallest bucket that holds the inputs' sequence length, or 0 when the export has no
// buckets. Inputs are in manifest order and were checked against the contract.
int64_t choose_bucket(const Manifest& manifest, const std::vector<at::Tensor>& inputs);

// Slices every output dimension named after a padded dimension back to the caller's length.
void slice_to_caller_lengths(const Manifest& manifest, const CallerLengths& lengths,
                             std::vector<at::Tensor>& outputs);

}  // namespace tsrunner::detail
