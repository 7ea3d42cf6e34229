#include "tsrunner/manifest_vocabulary.h"

#include <utility>

namespace tsrunner {
namespace {

template <typename Enum, size_t N>
std::string_view name_in(const std::pair<Enum, std::string_view> (&table)[N], Enum value) {
  for (const auto& [known, name] : table) {
    if (known == value) return name;
  }
  return {};
}

template <typename Enum, size_t N>
std::optional<Enum> parse_in(const std::pair<Enum, std::string_view> (&table)[N],
                             std::string_view name) {
  for (const auto& [known, known_name] : table) {
    if (known_name == name) return known;
  }
  return std::nullopt;
}

constexpr std::pair<Role, std::string_view> kRoles[] = {
    {Role::kTokenIds, "token_ids"},          {Role::kAttentionMask, "attention_mask"},
    {Role::kTokenTypeIds, "token_type_ids"}, {Role::kDecoderTokenIds, "decoder_token_ids"},
    {Role::kPixelValues, "pixel_values"},
};

constexpr std::pair<Fill, std::string_view> kFills[] = {
    {Fill::kOnes, "ones"},
    {Fill::kZeros, "zeros"},
};

constexpr std::pair<ShapeKind, std::string_view> kShapeKinds[] = {
    {ShapeKind::kDynamic, "dynamic"},
    {ShapeKind::kFixed, "fixed"},
    {ShapeKind::kUnknown, "unknown"},
};

constexpr std::pair<ScoreFunction, std::string_view> kScoreFunctions[] = {
    {ScoreFunction::kSoftmax, "softmax"},
    {ScoreFunction::kSigmoid, "sigmoid"},
    {ScoreFunction::kNone, "none"},
};

constexpr std::pair<PoolingMode, std::string_view> kPoolingModes[] = {
    {PoolingMode::kMean, "mean"},
    {PoolingMode::kCls, "cls"},
    {PoolingMode::kMax, "max"},
    {PoolingMode::kMeanSqrtLenTokens, "mean_sqrt_len_tokens"},
    {PoolingMode::kWeightedMean, "weightedmean"},
    {PoolingMode::kLastToken, "lasttoken"},
};

constexpr std::pair<Backend, std::string_view> kBackends[] = {
    {Backend::kJit, "jit"},
    {Backend::kNeuron, "neuron"},
    {Backend::kAoti, "aoti"},
};

}  // namespace

std::string_view role_name(Role role) { return name_in(kRoles, role); }
std::optional<Role> parse_role(std::string_view name) { return parse_in(kRoles, name); }

std::string_view fill_name(Fill fill) { return name_in(kFills, fill); }
std::optional<Fill> parse_fill(std::string_view name) { return parse_in(kFills, name); }

std::string_view shape_kind_name(ShapeKind kind) { return name_in(kShapeKinds, kind); }
std::optional<ShapeKind> parse_shape_kind(std::string_view name) {
  return parse_in(kShapeKinds, name);
}

std::string_view score_function_name(ScoreFunction function) {
  return name_in(kScoreFunctions, function);
}
std::optional<ScoreFunction> parse_score_function(std::string_view name) {
  return parse_in(kScoreFunctions, name);
}

std::string_view pooling_mode_name(PoolingMode mode) { return name_in(kPoolingModes, mode); }
std::optional<PoolingMode> parse_pooling_mode(std::string_view name) {
  return parse_in(kPoolingModes, name);
}

std::string_view backend_name(Backend backend) { return name_in(kBackends, backend); }
std::optional<Backend> parse_backend(std::string_view name) { return parse_in(kBackends, name); }

}  // namespace tsrunner
