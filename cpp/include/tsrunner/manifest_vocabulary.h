#pragma once

#include <optional>
#include <string_view>

#include "tsrunner/export.h"

// The manifest's closed vocabularies (docs/format.md), parsed once by Manifest::parse: code
// switches on these, never on the strings. Each has its manifest name and a parse that gives
// nullopt for a name outside the vocabulary (the manifest parser turns that into a LoadError
// naming the field).

namespace tsrunner {

// What an input carries.
enum class Role {
  kNone,  // a plain module's inputs, or an input the manifest gives no role
  kTokenIds,
  kAttentionMask,
  kTokenTypeIds,
  kDecoderTokenIds,
  kPixelValues,
};
TSR_API std::string_view role_name(Role role);  // "token_ids", ...; "" for kNone
TSR_API std::optional<Role> parse_role(std::string_view name);

// What fills an input a caller leaves out.
enum class Fill {
  kRequired,  // nothing: the caller must give it
  kOnes,
  kZeros,
};
TSR_API std::string_view fill_name(Fill fill);  // "ones", "zeros"; "" for kRequired
TSR_API std::optional<Fill> parse_fill(std::string_view name);

// Which shapes an export takes.
enum class ShapeKind {
  kDynamic,  // any batch and sequence within the validated ranges
  kFixed,    // the traced lengths (or buckets): shorter inputs are padded to them
  kUnknown,  // a plain TorchScript module: no contract
};
TSR_API std::string_view shape_kind_name(ShapeKind kind);
TSR_API std::optional<ShapeKind> parse_shape_kind(std::string_view name);

// How text-classification scores come from logits.
enum class ScoreFunction {
  kSoftmax,
  kSigmoid,  // one label, multi-label, rerankers
  kNone,     // the logits themselves (regression; TEI's raw_scores)
};
TSR_API std::string_view score_function_name(ScoreFunction function);
TSR_API std::optional<ScoreFunction> parse_score_function(std::string_view name);

// sentence-transformers' pooling modes (schema 1 archives record one).
enum class PoolingMode {
  kMean,
  kCls,
  kMax,
  kMeanSqrtLenTokens,
  kWeightedMean,
  kLastToken,
};
TSR_API std::string_view pooling_mode_name(PoolingMode mode);
TSR_API std::optional<PoolingMode> parse_pooling_mode(std::string_view name);

// What executes the archive.
enum class Backend {
  kJit,     // TorchScript
  kNeuron,  // TorchScript compiled by the AWS Neuron SDK: loadable only with its runtime
  kAoti,    // an AOTInductor .pt2 package
};
TSR_API std::string_view backend_name(Backend backend);
TSR_API std::optional<Backend> parse_backend(std::string_view name);

}  // namespace tsrunner
