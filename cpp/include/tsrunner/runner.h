#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>

#include "tsrunner/manifest.h"

namespace tsrunner {

using TensorMap = std::map<std::string, at::Tensor>;

struct RunnerOptions {
  // Intra-op threads for LibTorch. 0 keeps LibTorch's default. The setting is process-wide
  // (at::set_num_threads), as in LibTorch itself.
  int threads = 0;
  // "cpu" or a LibTorch device string such as "cuda:0".
  std::string device = "cpu";

  // Throws InvalidInput when an option is out of range.
  void validate() const;
};

// Loads a tsrunner `.pt` and runs named inputs to named outputs. Thread-safe: one Runner may be
// shared by many threads calling run() concurrently.
class Runner {
 public:
  // Throws LoadError when the file is missing, is not TorchScript or has no valid manifest.
  explicit Runner(const std::string& path, RunnerOptions options = {});
  ~Runner();
  Runner(Runner&&) noexcept;
  Runner& operator=(Runner&&) noexcept;
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  const Manifest& manifest() const;
  const RunnerOptions& options() const;

  // Runs the model under inference mode. Inputs the manifest marks with a default may be left
  // out. Throws InvalidInput (before running) when inputs break the manifest's contract.
  // Returns every output named in the manifest. A fixed-shape export gets shorter inputs padded
  // to its traced length (a bucketed one to the smallest bucket that fits) and its outputs
  // sliced back to the caller's lengths.
  TensorMap run(const TensorMap& inputs) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tsrunner
