#include "tsrunner/runner.h"

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/script.h>

#include <utility>

#include "archive.h"
#include "input_check.h"
#include "shape_padding.h"
#include "tsrunner/errors.h"

namespace tsrunner {

namespace {

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace

void RunnerOptions::validate() const {
  if (threads < 0) {
    throw InvalidInput("threads must be 0 (default) or positive, not " + std::to_string(threads));
  }
  try {
    (void)c10::Device(device);
  } catch (const c10::Error&) {
    throw InvalidInput("unknown device \"" + device + "\" (expected cpu, cuda or cuda:N)");
  }
}

struct Runner::Impl {
  Manifest manifest;
  RunnerOptions options;
  c10::Device device{c10::kCPU};
  // forward() of a loaded TorchScript module is safe to call from many threads at once.
  mutable torch::jit::Module module;
};

Runner::Runner(const std::string& path, RunnerOptions options) : impl_(std::make_unique<Impl>()) {
  options.validate();
  impl_->options = options;
  impl_->device = c10::Device(options.device);
  // Read and check the manifest before any TorchScript code is deserialised.
  impl_->manifest = Manifest::read_from_archive(path);
  if (options.threads > 0) at::set_num_threads(options.threads);
  try {
    impl_->module = torch::jit::load(path, impl_->device);
  } catch (const c10::Error& error) {
    throw LoadError("cannot load TorchScript from " + path + ": " + first_line(error.msg()));
  }
  impl_->module.eval();
}

Runner::~Runner() = default;
Runner::Runner(Runner&&) noexcept = default;
Runner& Runner::operator=(Runner&&) noexcept = default;

const Manifest& Runner::manifest() const { return impl_->manifest; }
const RunnerOptions& Runner::options() const { return impl_->options; }

TensorMap Runner::run(const TensorMap& inputs) const {
  const Manifest& manifest = impl_->manifest;
  std::vector<at::Tensor> ordered = detail::check_and_order_inputs(manifest, inputs);
  const int64_t bucket = detail::choose_bucket(manifest, ordered);
  const detail::CallerLengths caller_lengths =
      detail::pad_to_traced_lengths(manifest, ordered, bucket);

  c10::InferenceMode inference_guard;
  std::vector<c10::IValue> arguments;
  arguments.reserve(ordered.size());
  for (at::Tensor& tensor : ordered) arguments.emplace_back(tensor.to(impl_->device));

  c10::IValue result;
  try {
    result =
        bucket > 0
            ? impl_->module.get_method("forward_" + std::to_string(bucket))(std::move(arguments))
            : impl_->module.forward(std::move(arguments));
  } catch (const c10::Error& error) {
    throw Error("model run failed: " + first_line(error.msg()));
  }

  std::vector<at::Tensor> values;
  if (result.isTensor()) {
    values.push_back(result.toTensor());
  } else if (result.isTuple()) {
    for (const c10::IValue& element : result.toTupleRef().elements()) {
      if (!element.isTensor()) throw Error("model returned a non-tensor output");
      values.push_back(element.toTensor());
    }
  } else {
    throw Error("model returned " + result.tagKind() + ", expected a tensor or a tuple");
  }
  if (values.size() != manifest.outputs.size()) {
    throw Error("model returned " + std::to_string(values.size()) +
                " outputs but the manifest names " + std::to_string(manifest.outputs.size()));
  }
  detail::slice_to_caller_lengths(manifest, caller_lengths, values);
  TensorMap outputs;
  for (size_t i = 0; i < values.size(); ++i) {
    outputs.emplace(manifest.outputs[i].name, std::move(values[i]));
  }
  return outputs;
}

}  // namespace tsrunner
