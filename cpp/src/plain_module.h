#pragma once

#include <string>

#include "tsrunner/manifest.h"

namespace tsrunner::detail {

class Archive;

// A TorchScript archive without tsrunner's files (a `torch.jit.trace(model, ...)` saved as the
// original "Export to TorchScript" recipe does) described as far as its code says, without
// deserialising anything: the root module's class and the arguments of its forward, read from
// the archive's code record. Inputs are named after forward's arguments (so ids reach
// `input_ids`, not whatever the second positional slot is); dtypes, shapes and outputs' meaning
// are unknown (Manifest::plain_module). Throws LoadError when the code does not show a forward
// taking and returning tensors.
Manifest read_plain_module(const Archive& archive);

// The Manifest of the JSON read_plain_module records as raw_json ({"plain_module": true, ...}).
Manifest parse_plain_manifest(const std::string& json_text);

// The role of an input by Hugging Face's name for it ("input_ids": token ids, ...), for inputs
// without a recorded role (plain modules, archives written before roles); kNone for others.
Role role_of_unlabelled_input(const std::string& name);

// Manifest::describe() of a plain module.
std::string describe_plain_module(const Manifest& manifest);

}  // namespace tsrunner::detail
