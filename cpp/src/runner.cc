#include "tsrunner/runner.h"

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/jit/python/update_graph_executor_opt.h>
#include <torch/script.h>

#include <algorithm>
#include <cctype>
#include <utility>

#include "archive.h"
#include "cpu_fast_path.h"
#include "digest_record.h"
#include "input_check.h"
#include "shape_padding.h"
#include "tsrunner/errors.h"
#include "tsrunner/example_inputs.h"
#include "tsrunner/integrity.h"

namespace tsrunner {

namespace {

// The first non-blank line of a LibTorch message (a TorchScript ErrorReport starts with one).
std::string first_line(const std::string& text) {
  const size_t start = std::min(text.find_first_not_of(" \n"), text.size());
  return text.substr(start, text.find('\n', start) - start);
}

// A load failure in one line, naming Neuron when the archive needs its runtime: its graph
// calls ops only the Neuron runtime registers.
LoadError load_error(const std::string& path, const Manifest& manifest, const std::string& why) {
  if (manifest.backend == "neuron") {
    return LoadError(path + " was compiled for AWS Neuron (manifest backend \"neuron\"): it " +
                     "loads only where the Neuron runtime (torch-neuronx) is installed, not in " +
                     "plain LibTorch: " + first_line(why));
  }
  return LoadError("cannot load TorchScript from " + path + ": " + first_line(why));
}

// LibTorch accepts one inter-op thread count per process, before any inter-op work starts.
void apply_interop_threads(int wanted) {
  if (wanted == 0 || at::get_num_interop_threads() == wanted) return;
  try {
    at::set_num_interop_threads(wanted);
  } catch (const c10::Error&) {
    throw InvalidInput("interop_threads=" + std::to_string(wanted) +
                       " cannot be applied: this process already uses " +
                       std::to_string(at::get_num_interop_threads()) +
                       " (LibTorch sets it once per process)");
  }
}

// Sets LibTorch's graph-executor switch, which is thread-local, for one scope.
class GraphOptimizeScope {
 public:
  explicit GraphOptimizeScope(bool optimize) : previous_(torch::jit::getGraphExecutorOptimize()) {
    torch::jit::setGraphExecutorOptimize(optimize);
  }
  ~GraphOptimizeScope() { torch::jit::setGraphExecutorOptimize(previous_); }
  GraphOptimizeScope(const GraphOptimizeScope&) = delete;
  GraphOptimizeScope& operator=(const GraphOptimizeScope&) = delete;

 private:
  bool previous_;
};

}  // namespace

void RunnerOptions::validate() const {
  if (threads < 0) {
    throw InvalidInput("threads must be 0 (default) or positive, not " + std::to_string(threads));
  }
  if (interop_threads < 0) {
    throw InvalidInput("interop_threads must be 0 (default) or positive, not " +
                       std::to_string(interop_threads));
  }
  if (warmup_runs < 0) {
    throw InvalidInput("warmup_runs must be 0 or positive, not " + std::to_string(warmup_runs));
  }
  if (warmup_sequence < 1) {
    throw InvalidInput("warmup_sequence must be at least 1, not " +
                       std::to_string(warmup_sequence));
  }
  try {
    (void)c10::Device(device);
  } catch (const c10::Error&) {
    throw InvalidInput("unknown device \"" + device + "\" (expected cpu, cuda or cuda:N)");
  }
  detail::check_engine_name(engine);
  if (max_archive_bytes == 0 || max_embedded_file_bytes == 0) {
    throw InvalidInput("max_archive_bytes and max_embedded_file_bytes must be positive");
  }
  std::string pinned = expected_sha256;
  for (char& c : pinned) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!pinned.empty() && !detail::is_sha256_hex(pinned)) {
    throw InvalidInput("expected_sha256 must be 64 hex digits, not " +
                       std::to_string(expected_sha256.size()) + " characters");
  }
}

struct Runner::Impl {
  Manifest manifest;
  RunnerOptions options;
  c10::Device device{c10::kCPU};
  // forward() of a loaded TorchScript module is safe to call from many threads at once.
  mutable torch::jit::Module module;
  detail::KernelPath kernel_path;
};

namespace {

// Calls the method run() would call for these (checked, ordered, padded) inputs.
c10::IValue call_model(torch::jit::Module& module, std::vector<at::Tensor> ordered, int64_t bucket,
                       const c10::Device& device) {
  std::vector<c10::IValue> arguments;
  arguments.reserve(ordered.size());
  for (at::Tensor& tensor : ordered) arguments.emplace_back(tensor.to(device));
  return bucket > 0 ? module.get_method("forward_" + std::to_string(bucket))(std::move(arguments))
                    : module.forward(std::move(arguments));
}

// The check run of a rewritten module at load: one small batch, the graph as it stands.
void smoke_run(torch::jit::Module& module, const Manifest& manifest, const c10::Device& device) {
  int64_t sequence = 8;
  const ShapeContract& contract = manifest.shape_contract;
  if (contract.max_sequence > 0) sequence = std::min(sequence, contract.max_sequence);
  if (contract.kind == "fixed" && contract.max_sequence > 0) sequence = contract.max_sequence;
  std::vector<at::Tensor> ordered =
      detail::check_and_order_inputs(manifest, make_example_inputs(manifest, 1, sequence));
  const int64_t bucket = detail::choose_bucket(manifest, ordered);
  (void)detail::pad_to_traced_lengths(manifest, ordered, bucket);
  c10::InferenceMode inference_guard;
  const GraphOptimizeScope as_is(false);
  (void)call_model(module, std::move(ordered), bucket, device);
}

}  // namespace

Runner::Runner(const std::string& path, RunnerOptions options) : impl_(std::make_unique<Impl>()) {
  options.validate();
  impl_->options = options;
  impl_->device = c10::Device(options.device);
  // Check sizes, the content digest, the manifest and the embedded files before any
  // TorchScript code is deserialised: TorchScript runs code from the archive while loading.
  verify_archive(path, options);
  impl_->manifest = Manifest::read_from_archive(path);
  detail::check_embedded_files(path, impl_->manifest);
  if (options.threads > 0) at::set_num_threads(options.threads);
  apply_interop_threads(options.interop_threads);
  try {
    // Freezing needs the optimising executor (it inlines submodule calls); the option itself
    // applies to run().
    const GraphOptimizeScope optimize_while_loading(true);
    impl_->module = torch::jit::load(path, impl_->device);
    impl_->module.eval();
    // TorchScript compiles a method on its first call: compile them all now, so that an
    // archive calling ops this process lacks (a Neuron export) fails here, not mid-run.
    for (const torch::jit::Method& method : impl_->module.get_methods()) {
      method.function().ensure_defined();
    }
    if (options.freeze) {
      // Freezes (inlines parameters) first, as torch.jit.optimize_for_inference does.
      impl_->module = torch::jit::optimize_for_inference(impl_->module);
    }
    const Manifest& manifest = impl_->manifest;
    const c10::Device device = impl_->device;
    impl_->kernel_path = detail::apply_cpu_fast_path(
        impl_->module, options.engine, device.is_cpu(),
        [&manifest, &device](torch::jit::Module& module) { smoke_run(module, manifest, device); });
  } catch (const InvalidInput&) {
    throw;
  } catch (const c10::Error& error) {
    throw load_error(path, impl_->manifest, error.msg());
  } catch (const std::exception& error) {  // TorchScript compile errors (jit::ErrorReport)
    throw load_error(path, impl_->manifest, error.what());
  }
  if (options.warmup_runs > 0) {
    int64_t sequence = options.warmup_sequence;
    const ShapeContract& contract = impl_->manifest.shape_contract;
    if (contract.max_sequence > 0) sequence = std::min(sequence, contract.max_sequence);
    if (contract.kind == "fixed" && contract.max_sequence > 0) sequence = contract.max_sequence;
    const TensorMap inputs = make_example_inputs(impl_->manifest, 1, sequence);
    for (int i = 0; i < options.warmup_runs; ++i) (void)run(inputs);
  }
}

Runner::~Runner() = default;
Runner::Runner(Runner&&) noexcept = default;
Runner& Runner::operator=(Runner&&) noexcept = default;

const Manifest& Runner::manifest() const { return impl_->manifest; }
const RunnerOptions& Runner::options() const { return impl_->options; }
const std::string& Runner::engine() const { return impl_->kernel_path.path; }
const std::string& Runner::engine_reason() const { return impl_->kernel_path.reason; }

TensorMap Runner::run(const TensorMap& inputs) const {
  const Manifest& manifest = impl_->manifest;
  std::vector<at::Tensor> ordered = detail::check_and_order_inputs(manifest, inputs);
  const int64_t bucket = detail::choose_bucket(manifest, ordered);
  const detail::CallerLengths caller_lengths =
      detail::pad_to_traced_lengths(manifest, ordered, bucket);

  c10::InferenceMode inference_guard;
  const GraphOptimizeScope optimize(impl_->options.optimize_graph);
  c10::IValue result;
  try {
    result = call_model(impl_->module, std::move(ordered), bucket, impl_->device);
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
