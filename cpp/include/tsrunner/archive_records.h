#pragma once

#include <optional>
#include <string>

#include "tsrunner/export.h"

namespace tsrunner {

// A file embedded in an export (such as kTokenizerRecord, "tsrunner/tokenizer.json"), read from
// the archive's zip directory without loading any TorchScript code; nullopt when the export has
// no such file. The manifest record (kManifestRecord) comes back only once it parses, as
// Manifest::read_from_archive reads it. Throws LoadError when the file is not a readable
// archive. Python: tsrunner.read_archive_file.
TSR_API std::optional<std::string> read_archive_file(const std::string& path,
                                                     const std::string& name);

}  // namespace tsrunner
