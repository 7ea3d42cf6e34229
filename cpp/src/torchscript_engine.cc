// The TorchScript engine: the one translation unit of the runner that includes torch/script.h.
#include <torch/csrc/jit/python/update_graph_executor_opt.h>
#include <torch/script.h>

#include <string>
#include <utility>

#include "archive.h"
#include "engine.h"
#include "tsrunner/errors.h"
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
  if (manifest.backend == "neuron") {
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

  std::vector<at::Tensor> run(std::vector<at::Tensor> inputs, int64_t bucket) const override {
    const GraphOptimizeScope optimize(optimize_graph_);
    std::vector<c10::IValue> arguments;
    arguments.reserve(inputs.size());
    for (at::Tensor& tensor : inputs) arguments.emplace_back(tensor.to(device_));

    c10::IValue result;
    try {
      result = bucket > 0
                   ? module_.get_method("forward_" + std::to_string(bucket))(std::move(arguments))
                   : module_.forward(std::move(arguments));
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
    return values;
  }

 private:
  c10::Device device_;
  bool optimize_graph_;
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
