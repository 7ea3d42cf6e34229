#pragma once

// What the C API's opaque handles are, and the one guard every entry point runs its body in:
// exceptions become a status and a tsr_error, never unwind into C.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tsrunner/c_api.h"
#include "tsrunner/errors.h"
#include "tsrunner/pipeline.h"
#include "tsrunner/prediction.h"
#include "tsrunner/runner.h"
#include "tsrunner/tokenizer.h"

struct tsr_error {
  tsr_status status;
  std::string message;
};

struct tsr_runner_options {
  tsrunner::RunnerOptions options;
};

struct tsr_runner {
  tsr_runner(const std::string& path, const tsrunner::RunnerOptions& options)
      : runner(path, options) {}

  tsrunner::Runner runner;
  // Made by the first predict call (its constructor refuses tasks without text answers, which
  // must not stop the runner loading for tsr_runner_run) and shared by later ones.
  std::mutex pipeline_mutex;
  std::unique_ptr<tsrunner::Pipeline> pipeline;
};

struct tsr_tokenizer {
  tsrunner::Tokenizer tokenizer;
};

struct tsr_encoding {
  std::vector<int64_t> ids;
  std::vector<int64_t> type_ids;
  std::vector<int64_t> attention_mask;
  std::vector<int64_t> offsets;  // begin, end per token
  std::vector<int64_t> word_ids;
  std::vector<std::string> tokens;
};

struct tsr_predictions {
  std::vector<tsrunner::Prediction> predictions;
  std::vector<std::string> item_json;  // prediction_to_json of each
  std::string array_json;              // predictions_to_json of all
};

namespace tsrunner::c_api {

// Sets *error (when asked for) and returns `status`. Never throws: without memory for the
// error object, a static out-of-memory error is handed out instead (tsr_error_free skips it).
tsr_status fail(tsr_error** error, tsr_status status, const std::string& message) noexcept;

// Runs `body` and maps what it throws to a status: tsrunner's errors to their codes, anything
// else to TSR_ERROR (or TSR_OUT_OF_MEMORY), with the exception's first line as the message.
template <typename Body>
tsr_status guarded(tsr_error** error, Body&& body) noexcept {
  if (error != nullptr) *error = nullptr;
  try {
    std::forward<Body>(body)();
    return TSR_OK;
  } catch (const InvalidInput& e) {
    return fail(error, TSR_INVALID_INPUT, e.what());
  } catch (const LoadError& e) {
    return fail(error, TSR_LOAD_ERROR, e.what());
  } catch (const std::bad_alloc&) {
    return fail(error, TSR_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return fail(error, TSR_ERROR, e.what());
  } catch (...) {
    return fail(error, TSR_ERROR, "unknown exception");
  }
}

// Throws InvalidInput "<function>: <what>" unless `ok`.
void require(bool ok, const char* function, const std::string& what);

// Throws InvalidInput when `pointer` is NULL, naming `argument`.
template <typename T>
void require_pointer(const T* pointer, const char* function, const char* argument) {
  require(pointer != nullptr, function, std::string(argument) + " is NULL");
}

// Text `length` bytes at `data` (NULL allowed only when length is 0).
std::string_view text_argument(const char* data, size_t length, const char* function,
                               const char* argument);

// Copies what the caller needs out of an Encoding into a handle.
std::unique_ptr<tsr_encoding> to_encoding(const Encoding& encoding);

}  // namespace tsrunner::c_api
