#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "tsrunner/manifest.h"

namespace caffe2::serialize {
class PyTorchStreamReader;
}

namespace tsrunner::detail {

// Throws LoadError unless `path` names an existing regular file.
void require_model_file(const std::string& path);

// Opens `path` as a zip archive as LibTorch writes them, reading only the central directory.
// Throws LoadError when the file is missing or is not such an archive (empty, truncated, ...).
std::unique_ptr<caffe2::serialize::PyTorchStreamReader> open_archive(const std::string& path);

// The first sentence of a LibTorch error (the rest is advice about checkpoints), on one line.
std::string first_sentence(const std::string& message);

// Reads one TorchScript `_extra_files` record (such as "tsrunner/manifest.json") straight from
// the zip archive, without deserialising any TorchScript code. Returns nullopt when the record
// is absent; throws LoadError when the file is not a TorchScript (zip) archive or the record
// declares more than `max_bytes`.
std::optional<std::string> read_extra_file(const std::string& path, const std::string& name,
                                           uint64_t max_bytes = uint64_t{256} << 20);
std::optional<std::string> read_extra_file(caffe2::serialize::PyTorchStreamReader& reader,
                                           const std::string& path, const std::string& name,
                                           uint64_t max_bytes);

// Checks that the files the manifest names are there and parse (tokenizer.json must be a JSON
// object with a "model"); throws LoadError naming the file and the problem.
void check_embedded_files(const std::string& path, const Manifest& manifest);

}  // namespace tsrunner::detail
