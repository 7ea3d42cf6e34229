#pragma once

#include <cstring>
#include <string>

#include "tsrunner/errors.h"
#include "tsrunner/export.h"
#include "tsrunner/version_macros.h"  // generated: TSRUNNER_VERSION_MAJOR/MINOR/PATCH/STRING

namespace tsrunner {

// The tsrunner version this library was built as (from python/tsrunner/_version.py): the
// TSRUNNER_VERSION_STRING of the headers the library was compiled with.
TSR_API const char* version();

// The LibTorch version this library was built against.
TSR_API const char* torch_version();

// Throws Error when the library loaded at run time is not the version of the headers the
// caller was compiled with (TSRUNNER_VERSION_STRING): the C++ ABI changes between releases
// (docs/stable-api.md), so an app built against one tsrunner must not run with another's
// libtsrunner. Call it once at start-up. `header_version` is for tests.
inline void check_version(const char* header_version = TSRUNNER_VERSION_STRING) {
  const char* library_version = version();
  if (std::strcmp(library_version, header_version) != 0) {
    throw Error(std::string("tsrunner version mismatch: compiled against headers ") +
                header_version + " but running with libtsrunner " + library_version +
                ": rebuild the application against this tsrunner");
  }
}

}  // namespace tsrunner
