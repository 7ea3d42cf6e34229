// Arbitrary bytes as a manifest: parse() either returns a Manifest or throws LoadError, and
// whatever it accepts can be described and queried. Any other exception, crash, leak or UB is
// a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "tsrunner/errors.h"
#include "tsrunner/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const tsrunner::Manifest manifest = tsrunner::Manifest::parse(text);
    (void)manifest.describe();
    for (const tsrunner::TensorSpec& spec : manifest.inputs) (void)manifest.find_input(spec.name);
  } catch (const tsrunner::LoadError&) {
    // The one way to refuse a manifest.
  }
  return 0;
}
