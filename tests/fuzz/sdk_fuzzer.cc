// Arbitrary bytes through the public C++ API's structured entry points (Pipeline's
// predict_encodings / predict_encoded, Runner::run, the Tokenizer): see sdk_driver.h for the
// property and the input layout. The model is the tiny BERT fixture (TSR_FUZZ_SDK_MODEL,
// compiled in; `make fuzz` makes it with tests/data/make_fixtures.py). libtsrunner is compiled
// with the fuzzer's sanitizers (tests/fuzz/CMakeLists.txt); LibTorch is not instrumented.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "sdk_driver.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto runner = [] {
    tsrunner::RunnerOptions options;
    options.threads = 1;
    return std::make_unique<tsrunner::Runner>(TSR_FUZZ_SDK_MODEL, options);
  }();
  static const tsrunner::Pipeline pipeline(*runner);
  tsrunner::fuzzing::drive_sdk(data, size, pipeline);
  return 0;
}
