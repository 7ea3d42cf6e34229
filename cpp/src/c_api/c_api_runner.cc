// The C API's runner options and runner handles: build options, load, read the manifest, free.

#include <memory>
#include <string>

#include "c_api/handles.h"

using tsrunner::RunnerOptions;
using tsrunner::c_api::guarded;
using tsrunner::c_api::require_pointer;

namespace {

// Applies `change` to a copy of the options and keeps it only if the whole set still validates,
// so a bad value is refused by the setter that was given it, named by RunnerOptions::validate.
template <typename Change>
tsr_status set_option(tsr_runner_options* options, const char* function, tsr_error** error,
                      Change&& change) {
  return guarded(error, [&] {
    require_pointer(options, function, "options");
    RunnerOptions changed = options->options;
    change(changed);
    changed.validate();
    options->options = std::move(changed);
  });
}

template <typename Change>
tsr_status set_string_option(tsr_runner_options* options, const char* value, const char* function,
                             const char* argument, tsr_error** error, Change&& change) {
  return set_option(options, function, error, [&](RunnerOptions& changed) {
    require_pointer(value, function, argument);
    change(changed, std::string(value));
  });
}

}  // namespace

extern "C" {

tsr_status tsr_runner_options_create(tsr_runner_options** out, tsr_error** error) {
  return guarded(error, [&] {
    require_pointer(out, "tsr_runner_options_create", "out");
    *out = nullptr;
    *out = new tsr_runner_options();
  });
}

void tsr_runner_options_free(tsr_runner_options* options) { delete options; }

tsr_status tsr_runner_options_set_threads(tsr_runner_options* options, int32_t threads,
                                          tsr_error** error) {
  return set_option(options, "tsr_runner_options_set_threads", error,
                    [&](RunnerOptions& changed) { changed.threads = threads; });
}

tsr_status tsr_runner_options_set_interop_threads(tsr_runner_options* options, int32_t threads,
                                                  tsr_error** error) {
  return set_option(options, "tsr_runner_options_set_interop_threads", error,
                    [&](RunnerOptions& changed) { changed.interop_threads = threads; });
}

tsr_status tsr_runner_options_set_kernel_path(tsr_runner_options* options, const char* kernel_path,
                                              tsr_error** error) {
  return set_string_option(
      options, kernel_path, "tsr_runner_options_set_kernel_path", "kernel_path", error,
      [](RunnerOptions& changed, std::string value) { changed.kernel_path = std::move(value); });
}

tsr_status tsr_runner_options_set_engine(tsr_runner_options* options, const char* engine,
                                         tsr_error** error) {
  return tsr_runner_options_set_kernel_path(options, engine, error);
}

tsr_status tsr_runner_options_set_compute(tsr_runner_options* options, const char* compute,
                                          tsr_error** error) {
  return set_string_option(
      options, compute, "tsr_runner_options_set_compute", "compute", error,
      [](RunnerOptions& changed, std::string value) { changed.compute = std::move(value); });
}

tsr_status tsr_runner_options_set_device(tsr_runner_options* options, const char* device,
                                         tsr_error** error) {
  return set_string_option(
      options, device, "tsr_runner_options_set_device", "device", error,
      [](RunnerOptions& changed, std::string value) { changed.device = std::move(value); });
}

tsr_status tsr_runner_options_set_verify_integrity(tsr_runner_options* options, int32_t verify,
                                                   tsr_error** error) {
  return set_option(options, "tsr_runner_options_set_verify_integrity", error,
                    [&](RunnerOptions& changed) { changed.verify_integrity = verify != 0; });
}

tsr_status tsr_runner_options_set_expected_sha256(tsr_runner_options* options, const char* sha256,
                                                  tsr_error** error) {
  return set_option(
      options, "tsr_runner_options_set_expected_sha256", error,
      [&](RunnerOptions& changed) { changed.expected_sha256 = sha256 == nullptr ? "" : sha256; });
}

tsr_status tsr_runner_options_set_warmup_runs(tsr_runner_options* options, int32_t runs,
                                              tsr_error** error) {
  return set_option(options, "tsr_runner_options_set_warmup_runs", error,
                    [&](RunnerOptions& changed) { changed.warmup_runs = runs; });
}

tsr_status tsr_runner_load(const char* path, const tsr_runner_options* options, tsr_runner** out,
                           tsr_error** error) {
  return guarded(error, [&] {
    require_pointer(out, "tsr_runner_load", "out");
    *out = nullptr;
    require_pointer(path, "tsr_runner_load", "path");
    *out = new tsr_runner(path, options == nullptr ? RunnerOptions{} : options->options);
  });
}

void tsr_runner_free(tsr_runner* runner) { delete runner; }

const char* tsr_runner_manifest_json(const tsr_runner* runner) {
  if (runner == nullptr) return nullptr;
  try {
    return runner->runner.manifest().raw_json.c_str();
  } catch (...) {
    return nullptr;
  }
}

const char* tsr_runner_engine(const tsr_runner* runner) { return tsr_runner_kernel_path(runner); }

const char* tsr_runner_kernel_path(const tsr_runner* runner) {
  if (runner == nullptr) return nullptr;
  try {
    return runner->runner.kernel_path().c_str();
  } catch (...) {
    return nullptr;
  }
}

}  // extern "C"
