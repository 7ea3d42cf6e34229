#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "tsrunner/runner.h"
#include "tsrunner/tokenizer.h"

namespace tsrunner::cli {

// `tsrun mc.pt --text PROMPT --text-pair CHOICE --text-pair CHOICE ...` for multiple-choice
// exports: every --text is scored against all the choices, each choice paired with the text
// (as Transformers' *ForMultipleChoice models are trained), in one [1, choices, sequence]
// call. Prints one JSON line per text:
//   {"choices":[{"choice":"...","score":0.7},...],"best":0}
// with the softmax over the choices in the order given.
void print_multiple_choice(const Runner& runner, const Tokenizer& tokenizer,
                           const std::vector<std::string>& texts,
                           const std::vector<std::string>& choices, std::ostream& out);

}  // namespace tsrunner::cli
