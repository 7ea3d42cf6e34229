#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tsrunner/errors.h"

namespace tsrunner {
struct Manifest;
struct RunnerOptions;
}  // namespace tsrunner

namespace tsrunner::detail {

class Archive;
class ArchiveFile;

// What executes a model format. The Runner owns everything the format does not decide (input
// checks, bucket choice, padding and slicing back, warm-up, thread settings); an engine owns
// deserialising the model and running it: TorchScript (torchscript_engine.cc; the oneDNN fast
// path of issue 13 lives inside it) or AOTInductor .pt2 packages (aoti_engine.cc, issue 16).
class Engine {
 public:
  virtual ~Engine() = default;

  // Runs `inputs` (in the manifest's input order, checked and padded by the Runner) through the
  // graph traced for `bucket` (a bucketed export's sequence length; 0 for the one graph of an
  // unbucketed export) and returns the outputs in the manifest's output order. Called from
  // many threads at once. Throws Error when the model fails or returns something else than
  // tensors.
  virtual std::vector<at::Tensor> run(std::vector<at::Tensor> inputs, int64_t bucket) const = 0;

  // Runs the TorchScript method `name` (a generation export's "prefill" or "decode") on
  // `inputs` as given, returning its tensor outputs. Throws Error where the format has no
  // named methods or the model has no such method.
  virtual std::vector<at::Tensor> run_method(const std::string& name,
                                             std::vector<at::Tensor> inputs) const {
    (void)inputs;
    throw Error("this archive format cannot run the method \"" + name + "\"");
  }

  // The kernel path load chose (RunnerOptions::kernel_path): "onednn" or "default", and why.
  virtual const std::string& kernel_path() const = 0;
  virtual const std::string& kernel_path_reason() const = 0;
};

// Whether `archive` is an AOTInductor package (its "archive_format" record says "pt2") rather
// than TorchScript.
bool is_aoti_package(const Archive& archive);

// Loads the AOTInductor package of `archive` (already verified) through
// torch::inductor::AOTIModelPackageLoader: checks the manifest's "aoti" requirements against this
// CPU and LibTorch, extracts the package from the archive's one descriptor into a private
// temporary directory and loads it from there (aoti_engine.cc). Throws LoadError.
std::unique_ptr<Engine> load_aoti_engine(const Archive& archive, const Manifest& manifest,
                                         const RunnerOptions& options);

// Deserialises the TorchScript of an archive from `file` (already verified: nothing reopens the
// path), compiles every method and applies RunnerOptions' graph settings (freeze,
// optimize_graph). Throws LoadError naming the path and the problem.
std::unique_ptr<Engine> load_torchscript_engine(const std::shared_ptr<ArchiveFile>& file,
                                                const Manifest& manifest,
                                                const RunnerOptions& options);

}  // namespace tsrunner::detail
