#pragma once

#include <optional>
#include <string>

namespace tsrunner::detail {

// Throws LoadError unless `path` names an existing regular file.
void require_model_file(const std::string& path);

// Reads one TorchScript `_extra_files` record (such as "tsrunner/manifest.json") straight from
// the zip archive, without deserialising any TorchScript code. Returns nullopt when the record
// is absent; throws LoadError when the file is not a TorchScript (zip) archive.
std::optional<std::string> read_extra_file(const std::string& path, const std::string& name);

}  // namespace tsrunner::detail
