// Tokenizer::from_file: reading tokenizer.json from a file or from a TorchScript export. Kept
// apart from tokenizer.cc because the archive reader needs LibTorch; the tokenizer itself does
// not, so the fuzzer (tests/fuzz/tokenizer_fuzzer.cc) builds it without LibTorch.
#include "tsrunner/tokenizer.h"

#include <memory>
#include <optional>

#include "archive.h"
#include "tsrunner/errors.h"
#include "tsrunner/manifest.h"

namespace tsrunner {

Tokenizer Tokenizer::from_file(const std::string& path) {
  // One open: the magic bytes, the manifest and the tokenizer come from the same descriptor.
  auto file = std::make_shared<detail::ArchiveFile>(path);
  char magic[2] = {0, 0};
  if (file->read(0, magic, 2) == 2 && magic[0] == 'P' && magic[1] == 'K') {  // a zip: an export
    const detail::Archive archive(file);
    const Manifest manifest = archive.read_manifest();
    const std::optional<std::string> json_text = archive.read_extra_file(kTokenizerRecord);
    if (!json_text) {
      throw LoadError(path + " has no embedded tokenizer (" + std::string(kTokenizerRecord) +
                      "); pass token ids instead");
    }
    return from_json(*json_text, static_cast<size_t>(manifest.max_length));
  }
  std::string contents(file->size(), '\0');
  contents.resize(file->read(0, contents.data(), contents.size()));
  return from_json(contents, std::nullopt);
}

}  // namespace tsrunner
