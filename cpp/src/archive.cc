#include "archive.h"

#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "tsrunner/errors.h"
#include "tsrunner/manifest.h"

namespace tsrunner::detail {

void require_model_file(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) throw LoadError("model file not found: " + path);
  if (!std::filesystem::is_regular_file(status)) {
    throw LoadError("model path is not a regular file: " + path);
  }
}

std::string first_sentence(const std::string& message) {
  std::string text = message;
  // LibTorch's checks prefix "[enforce fail at file.cc:180] . "; the fact comes after.
  if (text.rfind("[enforce fail at ", 0) == 0 && text.find("] ") != std::string::npos) {
    text = text.substr(text.find("] ") + 2);
    if (text.rfind(". ", 0) == 0) text = text.substr(2);
  }
  text = text.substr(0, std::min(text.find(". "), text.find('\n')));
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

std::unique_ptr<caffe2::serialize::PyTorchStreamReader> open_archive(const std::string& path) {
  require_model_file(path);
  std::error_code ec;
  if (std::filesystem::file_size(path, ec) == 0 && !ec) {
    throw LoadError(path + " is empty (0 bytes), not a TorchScript archive");
  }
  try {
    return std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const c10::Error& error) {
    throw LoadError(path + " is not a TorchScript archive (" + first_sentence(error.msg()) + ")");
  }
}

std::optional<std::string> read_extra_file(caffe2::serialize::PyTorchStreamReader& reader,
                                           const std::string& path, const std::string& name,
                                           uint64_t max_bytes) {
  const std::string record = "extra/" + name;
  try {
    if (!reader.hasRecord(record)) return std::nullopt;
    const size_t declared = reader.getRecordSize(record);
    if (declared > max_bytes) {
      throw LoadError(name + " in " + path + " declares " + std::to_string(declared) +
                      " bytes, over the limit of " + std::to_string(max_bytes) +
                      " (max_embedded_file_bytes)");
    }
    auto [data, size] = reader.getRecord(record);
    return std::string(static_cast<const char*>(data.get()), size);
  } catch (const c10::Error& error) {
    throw LoadError("cannot read " + name + " from " + path + ": " + first_sentence(error.msg()));
  }
}

std::optional<std::string> read_extra_file(const std::string& path, const std::string& name,
                                           uint64_t max_bytes) {
  auto reader = open_archive(path);
  return read_extra_file(*reader, path, name, max_bytes);
}

void check_embedded_files(const std::string& path, const Manifest& manifest) {
  if (!manifest.has_tokenizer) return;
  const std::optional<std::string> text = read_extra_file(path, kTokenizerRecord);
  const std::string where = std::string(kTokenizerRecord) + " in " + path;
  if (!text) throw LoadError(path + "'s manifest names " + kTokenizerRecord + " but it is absent");
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(*text);
  } catch (const nlohmann::json::parse_error& error) {
    throw LoadError(where + " is not valid JSON (error at byte " + std::to_string(error.byte) +
                    ")");
  }
  if (!root.is_object() || !root.contains("model") || !root["model"].is_object()) {
    throw LoadError(where + " is not a Hugging Face tokenizer (no \"model\" object)");
  }
}

}  // namespace tsrunner::detail

namespace tsrunner {

Manifest Manifest::read_from_archive(const std::string& path) {
  std::optional<std::string> text = detail::read_extra_file(path, kManifestRecord);
  if (!text) {
    throw LoadError(path + " has no " + std::string(kManifestRecord) +
                    ": it is TorchScript but was not exported by tsrunner "
                    "(re-export it with `tsrunner export`)");
  }
  return Manifest::parse(*text);
}

}  // namespace tsrunner
