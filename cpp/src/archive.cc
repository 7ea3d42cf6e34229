#include "archive.h"

#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>
#include <fcntl.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "plain_module.h"
#include "tsrunner/archive_records.h"
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

ArchiveFile::ArchiveFile(const std::string& path) : path_(path) {
  require_model_file(path);
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw LoadError("cannot open " + path + ": " + std::strerror(errno));
  // What the descriptor refers to, not the path: the path may already name another file.
  if (::fstat(fd_, &opened_) != 0 || !S_ISREG(opened_.st_mode)) {
    ::close(fd_);
    throw LoadError("model path is not a regular file: " + path);
  }
}

ArchiveFile::~ArchiveFile() { ::close(fd_); }

size_t ArchiveFile::size() const { return static_cast<size_t>(opened_.st_size); }

size_t ArchiveFile::read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const {
  // As LibTorch's FileAdapter: a position past the end (a damaged zip directory points anywhere)
  // reads nothing, and LibTorch reports the short read.
  if (pos >= size()) return 0;
  n = std::min<uint64_t>(n, size() - pos);
  size_t done = 0;
  while (done < n) {
    const ssize_t got =
        ::pread(fd_, static_cast<char*>(buf) + done, n - done, static_cast<off_t>(pos + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw LoadError("cannot read " + path_ + ": " + std::strerror(errno));
    if (got == 0) break;  // end of file
    done += static_cast<size_t>(got);
  }
  return done;
}

void ArchiveFile::check_unchanged() const {
  // Size and modification time, not the change time: unlinking or renaming over the path (which
  // cannot alter what this descriptor reads) moves the change time too.
  struct stat now{};
  const bool same = ::fstat(fd_, &now) == 0 && now.st_size == opened_.st_size &&
                    now.st_mtim.tv_sec == opened_.st_mtim.tv_sec &&
                    now.st_mtim.tv_nsec == opened_.st_mtim.tv_nsec;
  if (!same) {
    throw LoadError(path_ + " was written to while it was being loaded; refusing what was read " +
                    "(load it again once nothing writes to it)");
  }
}

Archive::Archive(const std::string& path, uint64_t max_file_bytes)
    : Archive(std::make_shared<ArchiveFile>(path), max_file_bytes) {}

Archive::Archive(std::shared_ptr<ArchiveFile> file, uint64_t max_file_bytes)
    : file_(std::move(file)) {
  const std::string& path = file_->path();
  if (file_->size() > max_file_bytes) {
    throw LoadError(path + " is " + std::to_string(file_->size()) +
                    " bytes, over max_archive_bytes (" + std::to_string(max_file_bytes) + ")");
  }
  if (file_->size() == 0) {
    throw LoadError(path + " is empty (0 bytes), not a TorchScript archive");
  }
  try {
    reader_ = std::make_unique<caffe2::serialize::PyTorchStreamReader>(
        std::static_pointer_cast<caffe2::serialize::ReadAdapterInterface>(file_));
  } catch (const c10::Error& error) {
    throw LoadError(path + " is not a TorchScript archive (" + first_sentence(error.msg()) + ")");
  }
}

Archive::~Archive() = default;

std::optional<std::string> Archive::read_extra_file(const std::string& name,
                                                    uint64_t max_bytes) const {
  const std::string record = "extra/" + name;
  try {
    if (!reader_->hasRecord(record)) return std::nullopt;
    const size_t declared = reader_->getRecordSize(record);
    if (declared > max_bytes) {
      throw LoadError(name + " in " + path() + " declares " + std::to_string(declared) +
                      " bytes, over the limit of " + std::to_string(max_bytes) +
                      " (max_embedded_file_bytes)");
    }
    auto [data, size] = reader_->getRecord(record);
    return std::string(static_cast<const char*>(data.get()), size);
  } catch (const c10::Error& error) {
    throw LoadError("cannot read " + name + " from " + path() + ": " + first_sentence(error.msg()));
  }
}

Manifest Archive::read_manifest(uint64_t max_bytes) const {
  std::optional<std::string> text = read_extra_file(kManifestRecord, max_bytes);
  if (!text) {
    if (!has_tsrunner_records()) return read_plain_module(*this);
    throw LoadError(path() + " has no " + std::string(kManifestRecord) +
                    " but holds other tsrunner files: it was damaged or edited after export "
                    "(re-export it with `tsrunner export`)");
  }
  return Manifest::parse(*text);
}

bool Archive::has_tsrunner_records() const {
  for (const std::string& name : reader_->getAllRecords()) {
    if (name.rfind("extra/tsrunner/", 0) == 0) return true;
  }
  return false;
}

std::optional<std::string> read_embedded_files(const Archive& archive, const Manifest& manifest,
                                               uint64_t max_bytes) {
  if (!manifest.has_tokenizer) return std::nullopt;
  std::optional<std::string> text = archive.read_extra_file(kTokenizerRecord, max_bytes);
  const std::string where = std::string(kTokenizerRecord) + " in " + archive.path();
  if (!text) {
    throw LoadError(archive.path() + "'s manifest names " + kTokenizerRecord + " but it is absent");
  }
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
  return text;
}

}  // namespace tsrunner::detail

namespace tsrunner {

Manifest Manifest::read_from_archive(const std::string& path) {
  return detail::Archive(path).read_manifest();
}

std::optional<std::string> read_archive_file(const std::string& path, const std::string& name) {
  const detail::Archive archive(path);
  if (name == kManifestRecord) return archive.read_manifest().raw_json;
  return archive.read_extra_file(name);
}

}  // namespace tsrunner
