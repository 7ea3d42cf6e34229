#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tsrunner/export.h"
#include "tsrunner/manifest.h"
#include "tsrunner/options.h"
#include "tsrunner/tokenizer.h"

namespace tsrunner {

using TensorMap = std::map<std::string, at::Tensor>;

// Loads a tsrunner `.pt` and runs named inputs to named outputs. Thread-safe: one Runner may be
// shared by many threads calling run() concurrently.
class TSR_API Runner {
 public:
  // Opens `path` once and takes everything from that one open file: the size caps and the
  // content digest are checked, then the manifest, the embedded tokenizer and the TorchScript
  // are read from the same descriptor, so replacing the file meanwhile changes nothing
  // (docs/security.md). Throws LoadError when the file is missing, is not TorchScript, has no
  // valid manifest or fails a check; InvalidInput when an option is out of range.
  explicit Runner(const std::string& path, RunnerOptions options = {});
  ~Runner();
  Runner(Runner&&) noexcept;
  Runner& operator=(Runner&&) noexcept;
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  const Manifest& manifest() const;
  const RunnerOptions& options() const;
  // The kernel path load chose: "onednn" or "default" (RunnerOptions::kernel_path), "aoti" for
  // an AOTInductor package (its kernels are compiled in).
  const std::string& kernel_path() const;
  // Why, in a few words (for tsrun info and bench reports).
  const std::string& kernel_path_reason() const;

  // Whether the export embeds a tokenizer (the manifest's has_tokenizer).
  bool has_tokenizer() const;
  // The export's own tokenizer, parsed on first use from the bytes the constructor verified
  // (never by reopening the file), truncating to the manifest's max_length. Lives as long as
  // the Runner. Throws LoadError when the export has none or this build cannot read its kind;
  // run() works either way. Prefer it to Tokenizer::from_file(path) for a loaded model.
  const Tokenizer& tokenizer() const;

  // Runs the model under inference mode. Inputs the manifest marks with a default may be left
  // out. Throws InvalidInput (before running) when inputs break the manifest's contract.
  // Returns every output named in the manifest. A fixed-shape export gets shorter inputs padded
  // to its traced length (a bucketed one to the smallest bucket that fits) and its outputs
  // sliced back to the caller's lengths.
  TensorMap run(const TensorMap& inputs) const;

  // Runs the TorchScript method `name` of the archive (a generation export's "prefill" and
  // "decode", see docs/generation.md) on positional `inputs`, unchecked against the manifest,
  // under inference mode and this runner's thread settings. Throws Error when the archive has
  // no such method or the model fails.
  std::vector<at::Tensor> run_method(const std::string& name, std::vector<at::Tensor> inputs) const;

 private:
  struct Impl;
  Impl& impl() const;  // throws Error on a moved-from Runner
  std::unique_ptr<Impl> impl_;
};

}  // namespace tsrunner
