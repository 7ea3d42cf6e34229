#include "tsrunner/version.h"

#include <torch/headeronly/version.h>

namespace tsrunner {

const char* version() { return TSRUNNER_VERSION_STRING; }

const char* torch_version() { return TORCH_VERSION; }

}  // namespace tsrunner
