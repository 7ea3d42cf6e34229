#include "archive.h"

#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>

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

std::optional<std::string> read_extra_file(const std::string& path, const std::string& name) {
  require_model_file(path);
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    const std::string record = "extra/" + name;
    if (!reader.hasRecord(record)) return std::nullopt;
    auto [data, size] = reader.getRecord(record);
    return std::string(static_cast<const char*>(data.get()), size);
  } catch (const c10::Error& error) {
    // LibTorch's message runs on with advice about checkpoints; its first sentence is the fact.
    const std::string& message = error.msg();
    throw LoadError(path + " is not a TorchScript archive (" +
                    message.substr(0, std::min(message.find(". "), message.find('\n'))) + ")");
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
