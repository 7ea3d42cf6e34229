#pragma once

#include <stdexcept>
#include <string>

#include "tsrunner/export.h"

namespace tsrunner {

// Base of every error tsrunner throws on purpose. Messages are one line and name what is wrong.
class TSR_API Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The archive could not be opened or is not a valid tsrunner export
// (missing file, not TorchScript, no or malformed manifest). Python: tsrunner.LoadError.
class TSR_API LoadError : public Error {
 public:
  using Error::Error;
};

// The caller's inputs do not match the manifest's contract (names, dtypes, shapes, values).
// Checked before the model runs; the Runner stays usable. Python: tsrunner.InvalidInput (a
// ValueError).
class TSR_API InvalidInput : public Error {
 public:
  using Error::Error;
};

}  // namespace tsrunner
