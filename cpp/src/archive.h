#pragma once

#include <caffe2/serialize/read_adapter_interface.h>
#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "tsrunner/manifest.h"

namespace caffe2::serialize {
class PyTorchStreamReader;
}

namespace tsrunner {
struct RunnerOptions;
}

namespace tsrunner::detail {

// Throws LoadError unless `path` names an existing regular file.
void require_model_file(const std::string& path);

// The first sentence of a LibTorch error (the rest is advice about checkpoints), on one line.
std::string first_sentence(const std::string& message);

// One open descriptor on a model file, read with pread. Everything tsrunner takes from an
// archive (the digest check, the manifest, the tokenizer, the TorchScript itself) is read
// through one ArchiveFile, so a path replaced after the open (rename, new file, symlink) is
// never read: the bytes verified are the bytes loaded (docs/security.md).
class ArchiveFile final : public caffe2::serialize::ReadAdapterInterface {
 public:
  // Throws LoadError when `path` is missing, not a regular file or cannot be opened.
  explicit ArchiveFile(const std::string& path);
  ~ArchiveFile() override;
  ArchiveFile(const ArchiveFile&) = delete;
  ArchiveFile& operator=(const ArchiveFile&) = delete;

  // The size when opened.
  size_t size() const override;
  // Reads up to `n` bytes at `pos`; fewer only at the end of the file.
  size_t read(uint64_t pos, void* buf, size_t n, const char* what = "") const override;

  const std::string& path() const { return path_; }
  // Throws LoadError when the open file was written in place since it was opened (its size or
  // modification time moved): what was read may mix old and new bytes.
  void check_unchanged() const;

 private:
  std::string path_;
  int fd_ = -1;
  struct stat opened_{};
};

// A TorchScript (zip) archive read through one ArchiveFile: the zip directory is parsed once and
// every record comes from the same open file.
class Archive {
 public:
  // Throws LoadError when the file is missing, larger than `max_file_bytes` (checked before the
  // zip directory is parsed) or is not such an archive (empty, truncated, ...).
  explicit Archive(const std::string& path, uint64_t max_file_bytes = UINT64_MAX);
  // The same, over a file already open.
  explicit Archive(std::shared_ptr<ArchiveFile> file, uint64_t max_file_bytes = UINT64_MAX);
  ~Archive();
  Archive(const Archive&) = delete;
  Archive& operator=(const Archive&) = delete;

  const std::string& path() const { return file_->path(); }
  const std::shared_ptr<ArchiveFile>& file() const { return file_; }
  caffe2::serialize::PyTorchStreamReader& reader() const { return *reader_; }

  // One TorchScript `_extra_files` record (such as "tsrunner/manifest.json"), without
  // deserialising any TorchScript code. Returns nullopt when the record is absent; throws
  // LoadError when it declares more than `max_bytes` or cannot be read.
  std::optional<std::string> read_extra_file(const std::string& name,
                                             uint64_t max_bytes = uint64_t{256} << 20) const;

  // The manifest; for a TorchScript archive with none of tsrunner's files, a plain module's
  // description (plain_module.h: read from its code, nothing deserialised). Throws LoadError
  // when it is malformed, or absent from an archive holding other tsrunner files (damaged).
  Manifest read_manifest(uint64_t max_bytes = uint64_t{256} << 20) const;

  // Whether any record is one of tsrunner's embedded files (extra/tsrunner/...).
  bool has_tsrunner_records() const;

 private:
  std::shared_ptr<ArchiveFile> file_;
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader_;
};

// Checks that the files the manifest names are there and parse (tokenizer.json must be a JSON
// object with a "model"); throws LoadError naming the file and the problem. Returns the
// tokenizer.json text (nullopt when the manifest names none).
std::optional<std::string> read_embedded_files(const Archive& archive, const Manifest& manifest,
                                               uint64_t max_bytes);

// verify_archive on an archive already open: the size caps and the content digest, read through
// `archive`'s one descriptor (integrity.cc). Returns the digest (empty when not verified).
std::string verify_open_archive(const Archive& archive, const RunnerOptions& options);

}  // namespace tsrunner::detail
