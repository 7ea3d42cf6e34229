// The C API's versions, status names and error objects, and the helpers every entry point uses.

#include <string>

#include "c_api/handles.h"
#include "tsrunner/version.h"

namespace tsrunner::c_api {
namespace {

// Handed out when even the error object cannot be allocated; never freed.
tsr_error out_of_memory_error{TSR_OUT_OF_MEMORY, "out of memory"};

}  // namespace

tsr_status fail(tsr_error** error, tsr_status status, const std::string& message) noexcept {
  if (error == nullptr) return status;
  try {
    // One line: LibTorch's own errors append a C++ backtrace after the first.
    *error = new tsr_error{status, message.substr(0, message.find('\n'))};
  } catch (...) {
    *error = &out_of_memory_error;
  }
  return status;
}

void require(bool ok, const char* function, const std::string& what) {
  if (!ok) throw InvalidInput(std::string(function) + ": " + what);
}

std::string_view text_argument(const char* data, size_t length, const char* function,
                               const char* argument) {
  if (data == nullptr) {
    require(length == 0, function,
            std::string(argument) + " is NULL but its length is " + std::to_string(length));
    return {};
  }
  return {data, length};
}

}  // namespace tsrunner::c_api

extern "C" {

const char* tsr_version(void) { return tsrunner::version(); }

int32_t tsr_abi_version(void) { return TSR_ABI_VERSION; }

const char* tsr_status_name(tsr_status status) {
  switch (status) {
    case TSR_OK:
      return "OK";
    case TSR_INVALID_INPUT:
      return "INVALID_INPUT";
    case TSR_LOAD_ERROR:
      return "LOAD_ERROR";
    case TSR_ERROR:
      return "ERROR";
    case TSR_OUT_OF_MEMORY:
      return "OUT_OF_MEMORY";
  }
  return "UNKNOWN";
}

size_t tsr_dtype_size(int32_t dtype) {
  switch (dtype) {
    case TSR_INT64:
    case TSR_FLOAT64:
      return 8;
    case TSR_FLOAT32:
    case TSR_INT32:
      return 4;
    case TSR_FLOAT16:
    case TSR_BFLOAT16:
      return 2;
    case TSR_BOOL:
    case TSR_UINT8:
    case TSR_INT8:
      return 1;
    default:
      return 0;
  }
}

tsr_status tsr_error_status(const tsr_error* error) {
  return error == nullptr ? TSR_OK : error->status;
}

const char* tsr_error_message(const tsr_error* error) {
  return error == nullptr ? "" : error->message.c_str();
}

void tsr_error_free(tsr_error* error) {
  if (error != &tsrunner::c_api::out_of_memory_error) delete error;
}

}  // extern "C"
