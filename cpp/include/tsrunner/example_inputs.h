#pragma once

#include <cstdint>

#include "tsrunner/export.h"
#include "tsrunner/manifest.h"
#include "tsrunner/runner.h"

namespace tsrunner {

// Random inputs of shape [batch, sequence] that satisfy the manifest: integer inputs drawn from
// their valid range (token ids within the vocabulary), inputs with a default filled the way the
// runner would fill them (an all-ones attention mask), float inputs from a unit normal. Used by
// `tsrun bench`, by the runner's warm-up and by benchmarks. Throws InvalidInput when the shape
// is outside the manifest's contract. The same seed gives the same inputs.
TSR_API TensorMap make_example_inputs(const Manifest& manifest, int64_t batch, int64_t sequence,
                                      uint64_t seed = 0);

// The sizes of every symbolic dimension an export's inputs may name (docs/format.md).
struct ExampleShape {
  int64_t batch = 1;
  int64_t sequence = 16;
  int64_t decoder_sequence = 0;  // encoder-decoder exports (T5, BART); 0: as long as `sequence`
  int64_t choices = 2;           // multiple-choice exports
};

// As above, for exports whose inputs have decoder or choices dimensions too.
TSR_API TensorMap make_example_inputs(const Manifest& manifest, const ExampleShape& shape,
                                      uint64_t seed = 0);

}  // namespace tsrunner
