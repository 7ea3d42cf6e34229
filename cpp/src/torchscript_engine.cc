// The TorchScript engine: the one translation unit of the runner that includes torch/script.h.
#include <torch/csrc/jit/python/update_graph_executor_opt.h>
#include <torch/script.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "archive.h"
#include "cpu_fast_path.h"
#include "engine.h"
#include "input_check.h"
#include "kernel_settings.h"
#include "shape_padding.h"
#include "tsrunner/errors.h"
#include "tsrunner/example_inputs.h"
#include "tsrunner/manifest.h"
#include "tsrunner/runner.h"

namespace tsrunner::detail {
namespace {

// The first non-blank line of a LibTorch message (a TorchScript ErrorReport starts with one).
std::string first_line(const std::string& text) {
  const size_t start = std::min(text.find_first_not_of(" \n"), text.size());
  return text.substr(start, text.find('\n', start) - start);
}

// A load failure in one line, naming Neuron when the archive needs its runtime: its graph
// calls ops only the Neuron runtime registers.
LoadError load_error(const std::string& path, const Manifest& manifest, const std::string& why) {
  if (manifest.backend == Backend::kNeuron) {
    return LoadError(path + " was compiled for AWS Neuron (manifest backend \"neuron\"): it " +
                     "loads only where the Neuron runtime (torch-neuronx) is installed, not in " +
                     "plain LibTorch: " + first_line(why));
  }
  return LoadError("cannot load TorchScript from " + path + ": " + first_line(why));
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

class TorchScriptEngine final : public Engine {
 public:
  TorchScriptEngine(const std::shared_ptr<ArchiveFile>& file, const Manifest& manifest,
                    const RunnerOptions& options)
      : device_(options.device), optimize_graph_(options.optimize_graph) {
    try {
      // Freezing needs the optimising executor (it inlines submodule calls); the option itself
      // applies to run().
      const GraphOptimizeScope optimize_while_loading(true);
      // From the descriptor that was verified, never the path again.
      module_ = torch::jit::load(
          std::static_pointer_cast<caffe2::serialize::ReadAdapterInterface>(file), device_);
      module_.eval();
      // TorchScript compiles a method on its first call: compile them all now, so that an
      // archive calling ops this process lacks (a Neuron export) fails here, not mid-run.
      for (const torch::jit::Method& method : module_.get_methods()) {
        method.function().ensure_defined();
      }
      if (options.freeze) {
        // Freezes (inlines parameters) first, as torch.jit.optimize_for_inference does.
        module_ = torch::jit::optimize_for_inference(module_);
      }
      kernel_path_ =
          apply_cpu_fast_path(module_, options.kernel_path, options.compute, device_.is_cpu(),
                              resolve_kernel_settings(options),
                              [this, &manifest](torch::jit::Module& module, int64_t min_rows) {
                                smoke_run(module, manifest, min_rows);
                              });
    } catch (const InvalidInput&) {  // kernel_path=onednn where it cannot run
      throw;
    } catch (const c10::Error& error) {
      file->check_unchanged();  // a file rewritten mid-load explains any failure
      throw load_error(file->path(), manifest, error.msg());
    } catch (const LoadError&) {  // the file could not be read
      file->check_unchanged();
      throw;
    } catch (const std::exception& error) {  // TorchScript compile errors (jit::ErrorReport)
      file->check_unchanged();
      throw load_error(file->path(), manifest, error.what());
    }
    file->check_unchanged();
  }

  const std::string& kernel_path() const override { return kernel_path_.path; }
  const std::string& kernel_path_reason() const override { return kernel_path_.reason; }

  std::vector<at::Tensor> run(std::vector<at::Tensor> inputs, int64_t bucket) const override {
    const GraphOptimizeScope optimize(optimize_graph_);
    c10::IValue result;
    try {
      result = call(module_, std::move(inputs), bucket);
    } catch (const c10::Error& error) {
      throw Error("model run failed: " + first_line(error.msg()));
    }
    return tensors_of(result);
  }

  std::vector<at::Tensor> run_method(const std::string& name,
                                     std::vector<at::Tensor> inputs) const override {
    // Methods (a generation export's prefill, encode, decode) run as loaded and rewritten, never
    // through the profiling executor: their shapes change at every call (decode's past grows by
    // one), and for each new shape the profiler re-optimised the graph, its CSE comparing every
    // frozen weight constant with at::equal: ~1 s per decode step of a GPT-2 small for its
    // first dozen shapes (docs/benchmarks.md, "Generation (issue 26)").
    const GraphOptimizeScope optimize(false);
    const std::optional<torch::jit::Method> method = module_.find_method(name);
    if (!method) throw Error("the model has no method \"" + name + "\"");
    std::vector<c10::IValue> arguments;
    arguments.reserve(inputs.size());
    for (at::Tensor& tensor : inputs) arguments.emplace_back(tensor.to(device_));
    try {
      return tensors_of((*method)(std::move(arguments)));
    } catch (const c10::Error& error) {
      throw Error("model run failed (" + name + "): " + first_line(error.msg()));
    }
  }

 private:
  static std::vector<at::Tensor> tensors_of(const c10::IValue& result) {
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
    return values;
  }

  // Calls the graph traced for `bucket` (0: forward).
  c10::IValue call(torch::jit::Module& module, std::vector<at::Tensor> inputs,
                   int64_t bucket) const {
    std::vector<c10::IValue> arguments;
    arguments.reserve(inputs.size());
    for (at::Tensor& tensor : inputs) arguments.emplace_back(tensor.to(device_));
    return bucket > 0 ? module.get_method("forward_" + std::to_string(bucket))(std::move(arguments))
                      : module.forward(std::move(arguments));
  }

  // The check run of a rewritten module at load: one small batch (enough sequences for at
  // least `min_rows` tokens in all), the graph as it stands.
  void smoke_run(torch::jit::Module& module, const Manifest& manifest, int64_t min_rows) const {
    int64_t sequence = 8;
    const ShapeContract& contract = manifest.shape_contract;
    if (contract.max_sequence > 0) sequence = std::min(sequence, contract.max_sequence);
    if (contract.kind == ShapeKind::kFixed && contract.max_sequence > 0)
      sequence = contract.max_sequence;
    int64_t batch = std::max<int64_t>(1, (min_rows + sequence - 1) / sequence);
    if (contract.max_batch > 0) batch = std::min(batch, contract.max_batch);
    std::vector<at::Tensor> ordered =
        check_and_order_inputs(manifest, make_example_inputs(manifest, batch, sequence));
    const int64_t bucket = choose_bucket(manifest, ordered);
    (void)pad_to_traced_lengths(manifest, ordered, bucket);
    const c10::InferenceMode inference_guard;
    const GraphOptimizeScope as_is(false);
    (void)call(module, std::move(ordered), bucket);
  }

  c10::Device device_;
  bool optimize_graph_;
  KernelPath kernel_path_;
  // forward() of a loaded TorchScript module is safe to call from many threads at once.
  mutable torch::jit::Module module_;
};

}  // namespace

std::unique_ptr<Engine> load_torchscript_engine(const std::shared_ptr<ArchiveFile>& file,
                                                const Manifest& manifest,
                                                const RunnerOptions& options) {
  return std::make_unique<TorchScriptEngine>(file, manifest, options);
}

}  // namespace tsrunner::detail
