#include "tsrunner/example_inputs.h"

#include <ATen/ATen.h>

#include "tsrunner/dtype.h"
#include "tsrunner/errors.h"

namespace tsrunner {

namespace {

at::ScalarType scalar_type_of(const TensorSpec& spec) {
  if (const std::optional<at::ScalarType> type = scalar_type(spec.dtype)) return *type;
  throw InvalidInput("input \"" + spec.name + "\" has dtype " +
                     std::string(dtype_name(spec.dtype)) + ", which example inputs cannot make");
}

std::vector<int64_t> shape_of(const TensorSpec& spec, const ExampleShape& sizes) {
  std::vector<int64_t> shape;
  for (const Dim& dim : spec.dims) {
    if (!dim.is_symbolic()) {
      shape.push_back(dim.size);
    } else if (dim.symbol == "batch") {
      shape.push_back(sizes.batch);
    } else if (dim.symbol == "sequence") {
      shape.push_back(sizes.sequence);
    } else if (dim.symbol == "decoder_sequence") {
      shape.push_back(sizes.decoder_sequence > 0 ? sizes.decoder_sequence : sizes.sequence);
    } else if (dim.symbol == "choices") {
      shape.push_back(sizes.choices);
    } else {
      throw InvalidInput("input \"" + spec.name + "\" has a dimension \"" + dim.symbol +
                         "\" that example inputs cannot size");
    }
  }
  return shape;
}

}  // namespace

TensorMap make_example_inputs(const Manifest& manifest, int64_t batch, int64_t sequence,
                              uint64_t seed) {
  ExampleShape shape;
  shape.batch = batch;
  shape.sequence = sequence;
  return make_example_inputs(manifest, shape, seed);
}

TensorMap make_example_inputs(const Manifest& manifest, const ExampleShape& sizes, uint64_t seed) {
  const int64_t batch = sizes.batch;
  const int64_t sequence = sizes.sequence;
  const ShapeContract& contract = manifest.shape_contract;
  if (batch < 1) throw InvalidInput("batch must be at least 1, not " + std::to_string(batch));
  if (sequence < 1) {
    throw InvalidInput("sequence must be at least 1, not " + std::to_string(sequence));
  }
  if (contract.max_batch > 0 && batch > contract.max_batch) {
    throw InvalidInput("batch " + std::to_string(batch) + " is above the export's maximum " +
                       std::to_string(contract.max_batch));
  }
  if (contract.max_sequence > 0 && sequence > contract.max_sequence) {
    throw InvalidInput("sequence " + std::to_string(sequence) + " is above the export's maximum " +
                       std::to_string(contract.max_sequence));
  }
  if (sizes.decoder_sequence < 0 || sizes.choices < 1) {
    throw InvalidInput(
        "decoder_sequence must be 0 (as sequence) or positive and choices at "
        "least 1");
  }

  at::Generator generator = at::detail::createCPUGenerator(seed);
  TensorMap inputs;
  for (const TensorSpec& spec : manifest.inputs) {
    const auto options = at::TensorOptions().dtype(scalar_type_of(spec));
    const std::vector<int64_t> shape = shape_of(spec, sizes);
    at::Tensor tensor;
    if (spec.default_fill == Fill::kOnes) {
      tensor = at::ones(shape, options);
    } else if (spec.default_fill == Fill::kZeros) {
      tensor = at::zeros(shape, options);
    } else if (spec.value_range) {
      tensor =
          at::randint(spec.value_range->first, spec.value_range->second, shape, generator, options);
    } else if (at::isFloatingType(options.dtype().toScalarType())) {
      tensor = at::randn(shape, generator, options);
    } else {
      tensor = at::zeros(shape, options);
    }
    inputs.emplace(spec.name, std::move(tensor));
  }
  return inputs;
}

}  // namespace tsrunner
