#include "tsrunner/runner.h"

#include <ATen/Parallel.h>
#include <c10/core/Device.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <utility>

#include "archive.h"
#include "cpu_fast_path.h"
#include "digest_record.h"
#include "engine.h"
#include "input_check.h"
#include "intra_op_threads.h"
#include "kernel_settings.h"
#include "shape_padding.h"
#include "tsrunner/errors.h"
#include "tsrunner/example_inputs.h"
#include "tsrunner/integrity.h"
#include "tsrunner/testing.h"

namespace tsrunner {

namespace {

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

testing::AfterVerifyHook& after_verify_hook() {
  static testing::AfterVerifyHook hook;
  return hook;
}

testing::RunHook& run_hook() {
  static testing::RunHook hook;
  return hook;
}

void check_thread_count(const char* name, int value) {
  if (value < 0) {
    throw InvalidInput(std::string(name) + " must be 0 (default) or positive, not " +
                       std::to_string(value));
  }
  if (value > kMaxThreads) {
    throw InvalidInput(std::string(name) + " must be at most " + std::to_string(kMaxThreads) +
                       ", not " + std::to_string(value));
  }
}

}  // namespace

void testing::set_after_verify_hook(AfterVerifyHook hook) { after_verify_hook() = std::move(hook); }
void testing::set_run_hook(RunHook hook) { run_hook() = std::move(hook); }

void RunnerOptions::validate() const {
  check_thread_count("threads", threads);
  check_thread_count("interop_threads", interop_threads);
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
  detail::check_kernel_path_name(kernel_path);
  detail::check_compute_name(compute);
  (void)detail::resolve_kernel_settings(*this);  // the kernel switches and their TSR_* defaults
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
  std::unique_ptr<detail::Engine> engine;
  // The embedded tokenizer.json as verified, parsed on the first tokenizer() call.
  std::string tokenizer_json;
  std::once_flag tokenizer_parsed;
  std::optional<Tokenizer> tokenizer;
  std::string tokenizer_error;  // why tokenizer() throws, when it does

  // Calls in flight: the destructor waits for them (docs/cpp-api.md, "Lifetimes").
  std::mutex calls_mutex;
  std::condition_variable calls_done;
  int calls_in_flight = 0;
  bool closing = false;

  // Counts one call for its lifetime; refuses to start one once the runner is being destroyed.
  class Call {
   public:
    explicit Call(Impl& impl) : impl_(impl) {
      const std::lock_guard<std::mutex> lock(impl_.calls_mutex);
      if (impl_.closing) throw Error("tsrunner::Runner::run called while the runner is destroyed");
      ++impl_.calls_in_flight;
    }
    ~Call() {
      const std::lock_guard<std::mutex> lock(impl_.calls_mutex);
      if (--impl_.calls_in_flight == 0) impl_.calls_done.notify_all();
    }
    Call(const Call&) = delete;
    Call& operator=(const Call&) = delete;

   private:
    Impl& impl_;
  };

  // Refuses new calls and returns once every call in flight has returned.
  void drain() {
    std::unique_lock<std::mutex> lock(calls_mutex);
    closing = true;
    calls_done.wait(lock, [this] { return calls_in_flight == 0; });
  }
};

Runner::Impl& Runner::impl() const {
  if (!impl_) throw Error("tsrunner::Runner used after move");
  return *impl_;
}

Runner::Runner(const std::string& path, RunnerOptions options) : impl_(std::make_unique<Impl>()) {
  options.validate();
  impl_->options = options;
  // One descriptor for everything below. Sizes, the content digest, the manifest and the
  // embedded files are checked before any TorchScript is deserialised (TorchScript runs code
  // from the archive while loading), and the TorchScript comes from the same open file.
  const detail::Archive archive(path, options.max_archive_bytes);
  detail::verify_open_archive(archive, options);
  impl_->manifest = archive.read_manifest(options.max_embedded_file_bytes);
  std::optional<std::string> tokenizer_json =
      detail::read_embedded_files(archive, impl_->manifest, options.max_embedded_file_bytes);
  if (tokenizer_json) {
    impl_->tokenizer_json = std::move(*tokenizer_json);
  } else if (impl_->manifest.plain_module) {
    impl_->tokenizer_error = path + " is a plain TorchScript module (no tsrunner manifest): it " +
                             "takes token ids (Runner.run, tsrun --ids --raw), not text; " +
                             "`tsrunner adopt " + path +
                             " --model MODEL_DIR -o model.pt` makes an archive that does";
  } else {
    impl_->tokenizer_error = path + " has no embedded tokenizer (" + std::string(kTokenizerRecord) +
                             "); pass token ids instead";
  }
  if (after_verify_hook()) after_verify_hook()(path);
  // Loading (freezing, packing weights, warm-up) takes the runner's thread count on this thread
  // only; the caller's count comes back afterwards.
  const detail::ScopedIntraOpThreads load_threads(options.threads);
  apply_interop_threads(options.interop_threads);
  // The archive says what it is: an AOTInductor package or TorchScript, and the manifest must
  // agree (a renamed or repackaged file is refused, not run by the wrong engine).
  const bool aoti = detail::is_aoti_package(archive);
  if (aoti != (impl_->manifest.backend == Backend::kAoti)) {
    throw LoadError(path + (aoti ? " is an AOTInductor package" : " is TorchScript") +
                    " but its manifest says backend \"" +
                    std::string(backend_name(impl_->manifest.backend)) + "\"; re-export it");
  }
  if (impl_->manifest.plain_module) {
    // tsrunner's kernels check a rewritten graph on example inputs built from the manifest's
    // shapes and dtypes, which a plain module does not have: it runs as traced.
    if (options.kernel_path == "onednn" || options.compute != "fp32") {
      throw InvalidInput(path + " is a plain TorchScript module: kernel path \"onednn\" and " +
                         "compute "
                         "\"bf16\" need a tsrunner archive (`tsrunner adopt` makes one)");
    }
    options.kernel_path = "default";
    options.warmup_runs = 0;  // no shapes to make warm-up inputs from
    impl_->options = options;
  }
  impl_->engine = aoti ? detail::load_aoti_engine(archive, impl_->manifest, options)
                       : detail::load_torchscript_engine(archive.file(), impl_->manifest, options);
  if (options.warmup_runs > 0) {
    int64_t sequence = options.warmup_sequence;
    const ShapeContract& contract = impl_->manifest.shape_contract;
    if (contract.max_sequence > 0) sequence = std::min(sequence, contract.max_sequence);
    if (contract.kind == ShapeKind::kFixed && contract.max_sequence > 0)
      sequence = contract.max_sequence;
    const TensorMap inputs = make_example_inputs(impl_->manifest, 1, sequence);
    for (int i = 0; i < options.warmup_runs; ++i) (void)run(inputs);
  }
}

Runner::~Runner() {
  if (impl_) impl_->drain();
}
Runner::Runner(Runner&&) noexcept = default;
Runner& Runner::operator=(Runner&& other) noexcept {
  if (this != &other) {
    if (impl_) impl_->drain();  // the model being replaced finishes its calls first
    impl_ = std::move(other.impl_);
  }
  return *this;
}

const Manifest& Runner::manifest() const { return impl().manifest; }
const RunnerOptions& Runner::options() const { return impl().options; }
const std::string& Runner::kernel_path() const { return impl().engine->kernel_path(); }
const std::string& Runner::kernel_path_reason() const {
  return impl().engine->kernel_path_reason();
}

bool Runner::has_tokenizer() const { return impl().manifest.has_tokenizer; }

const Tokenizer& Runner::tokenizer() const {
  Impl& impl = this->impl();
  std::call_once(impl.tokenizer_parsed, [&impl] {
    if (impl.tokenizer_json.empty()) return;
    try {
      impl.tokenizer.emplace(
          Tokenizer::from_json(impl.tokenizer_json, static_cast<size_t>(impl.manifest.max_length)));
    } catch (const Error& error) {
      impl.tokenizer_error = error.what();
    }
    std::string().swap(impl.tokenizer_json);  // parsed once; the text is not needed again
  });
  if (!impl.tokenizer) throw LoadError(impl.tokenizer_error);
  return *impl.tokenizer;
}

TensorMap Runner::run(const TensorMap& inputs) const {
  Impl& impl = this->impl();
  const Impl::Call call(impl);
  const Manifest& manifest = impl.manifest;
  std::vector<at::Tensor> ordered = detail::check_and_order_inputs(manifest, inputs);
  const int64_t bucket = detail::choose_bucket(manifest, ordered);
  const detail::CallerLengths caller_lengths =
      detail::pad_to_traced_lengths(manifest, ordered, bucket);

  c10::InferenceMode inference_guard;
  const detail::ScopedIntraOpThreads threads(impl.options.threads);
  if (run_hook()) run_hook()();
  std::vector<at::Tensor> values = impl.engine->run(std::move(ordered), bucket);
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

std::vector<at::Tensor> Runner::run_method(const std::string& name,
                                           std::vector<at::Tensor> inputs) const {
  Impl& impl = this->impl();
  const Impl::Call call(impl);
  c10::InferenceMode inference_guard;
  const detail::ScopedIntraOpThreads threads(impl.options.threads);
  return impl.engine->run_method(name, std::move(inputs));
}

}  // namespace tsrunner
