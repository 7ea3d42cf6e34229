// Tokenizer::from_file: reading tokenizer.json from a file or from a TorchScript export. Kept
// apart from tokenizer.cc because the archive reader needs LibTorch; the tokenizer itself does
// not, so the fuzzer (tests/fuzz/tokenizer_fuzzer.cc) builds it without LibTorch.
#include "tsrunner/tokenizer.h"

#include <fstream>
#include <sstream>

#include "archive.h"
#include "tsrunner/errors.h"
#include "tsrunner/manifest.h"

namespace tsrunner {

Tokenizer Tokenizer::from_file(const std::string& path) {
  detail::require_model_file(path);
  std::ifstream file(path, std::ios::binary);
  char magic[2] = {0, 0};
  file.read(magic, 2);
  if (magic[0] == 'P' && magic[1] == 'K') {  // a zip archive: a TorchScript export
    const detail::Archive archive(path);     // one open for the manifest and the tokenizer
    const Manifest manifest = archive.read_manifest();
    const std::optional<std::string> json_text = archive.read_extra_file(kTokenizerRecord);
    if (!json_text) {
      throw LoadError(path + " has no embedded tokenizer (" + std::string(kTokenizerRecord) +
                      "); pass token ids instead");
    }
    return from_json(*json_text, static_cast<size_t>(manifest.max_length));
  }
  file.seekg(0);
  std::stringstream contents;
  contents << file.rdbuf();
  return from_json(contents.str(), std::nullopt);
}

}  // namespace tsrunner
