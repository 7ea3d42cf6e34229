#pragma once

namespace tsrunner {

// The tsrunner version this library was built as (from python/tsrunner/_version.py).
const char* version();

// The LibTorch version this library was built against.
const char* torch_version();

}  // namespace tsrunner
