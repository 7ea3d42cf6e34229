// The archive's SHA-256 content digest and the size caps, checked before any TorchScript is
// deserialised. The digest's definition (docs/security.md) is shared with
// python/tsrunner/integrity.py, which writes it; a test checks that both compute the same value.
#include "tsrunner/integrity.h"

#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <memory>
#include <vector>

#include "archive.h"
#include "digest_record.h"
#include "tsrunner/errors.h"
#include "tsrunner/manifest.h"

namespace tsrunner {
namespace {

constexpr size_t kChunkBytes = size_t{1} << 20;

// SHA-256 from tsrunner's own OpenSSL library context, never the process-wide default one:
// libcrypto is linked in statically, and the default context would read the host's
// openssl.cnf (written for whatever OpenSSL the system has, and free to activate providers
// that do not load into this copy). A fresh context reads no configuration and serves the
// digest from the built-in default provider. Fetched once, shared by every thread, kept for the
// life of the process.
const EVP_MD* sha256_algorithm() {
  static EVP_MD* const algorithm = [] {
    OSSL_LIB_CTX* context = OSSL_LIB_CTX_new();
    return context == nullptr ? nullptr : EVP_MD_fetch(context, "SHA2-256", nullptr);
  }();
  return algorithm;
}

class Sha256 {
 public:
  Sha256() : context_(EVP_MD_CTX_new(), &EVP_MD_CTX_free) {
    const EVP_MD* algorithm = sha256_algorithm();
    if (!algorithm || !context_ || EVP_DigestInit_ex(context_.get(), algorithm, nullptr) != 1) {
      throw Error("cannot initialise SHA-256 (OpenSSL)");
    }
  }

  void update(const void* data, size_t size) {
    if (EVP_DigestUpdate(context_.get(), data, size) != 1) throw Error("SHA-256 update failed");
  }

  // Little-endian, so that the framing is the same on every machine.
  void update_u64(uint64_t value) {
    std::array<unsigned char, 8> bytes{};
    for (size_t i = 0; i < bytes.size(); ++i)
      bytes[i] = static_cast<unsigned char>(value >> (8 * i));
    update(bytes.data(), bytes.size());
  }

  std::string hex_digest() {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int size = 0;
    if (EVP_DigestFinal_ex(context_.get(), digest.data(), &size) != 1) {
      throw Error("SHA-256 final failed");
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex;
    for (unsigned int i = 0; i < size; ++i) {
      hex += kHex[digest[i] >> 4];
      hex += kHex[digest[i] & 0xf];
    }
    return hex;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context_;
};

// SHA-256 over every record except the digest record, in byte order of name, each framed as
// u64le(name length) name u64le(size) bytes: the framing makes the stream unambiguous, so no
// bytes can move between a name and a record or between two records without changing it.
std::string content_digest(caffe2::serialize::PyTorchStreamReader& reader,
                           const std::vector<std::string>& sorted_names) {
  const std::string digest_record = "extra/" + std::string(kDigestRecord);
  Sha256 sha;
  std::vector<char> buffer(kChunkBytes);
  for (const std::string& name : sorted_names) {
    if (name == digest_record) continue;
    const size_t size = reader.getRecordSize(name);
    sha.update_u64(name.size());
    sha.update(name.data(), name.size());
    sha.update_u64(size);
    if (size == 0) continue;
    auto chunks = reader.createChunkReaderIter(name, size, kChunkBytes);
    size_t done = 0;
    while (done < size) {
      const size_t got = chunks.next(buffer.data());
      if (got == 0) throw LoadError("record " + name + " ends early");
      sha.update(buffer.data(), got);
      done += got;
    }
  }
  return sha.hex_digest();
}

std::string lowercase(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

std::string short_digest(const std::string& hex) { return "sha256:" + hex.substr(0, 16) + "..."; }

// Sorted record names, each once; checks every declared size against the caps before any
// record is read (a zip can declare far more bytes than the file holds).
std::vector<std::string> checked_record_names(caffe2::serialize::PyTorchStreamReader& reader,
                                              const std::string& path,
                                              const RunnerOptions& options) {
  std::vector<std::string> names = reader.getAllRecords();
  std::sort(names.begin(), names.end());
  const auto repeated = std::adjacent_find(names.begin(), names.end());
  if (repeated != names.end()) {
    throw LoadError(path + " holds the record " + *repeated +
                    " twice: it was modified after export, do not load it");
  }
  uint64_t total = 0;
  for (const std::string& name : names) {
    const uint64_t size = reader.getRecordSize(name);
    if (name.rfind("extra/", 0) == 0 && size > options.max_embedded_file_bytes) {
      throw LoadError(path + ": embedded file " + name.substr(6) + " declares " +
                      std::to_string(size) + " bytes, over max_embedded_file_bytes (" +
                      std::to_string(options.max_embedded_file_bytes) + ")");
    }
    total += std::min(size, options.max_archive_bytes + 1);  // no overflow
    if (total > options.max_archive_bytes) {
      throw LoadError(path + " declares more than " + std::to_string(options.max_archive_bytes) +
                      " bytes of records once unpacked, over max_archive_bytes");
    }
  }
  return names;
}

}  // namespace

}  // namespace tsrunner

namespace tsrunner::detail {

std::string verify_open_archive(const Archive& archive, const RunnerOptions& options) {
  options.validate();
  const std::string& path = archive.path();
  const uint64_t file_size = archive.file()->size();
  if (file_size > options.max_archive_bytes) {
    throw LoadError(path + " is " + std::to_string(file_size) + " bytes, over max_archive_bytes (" +
                    std::to_string(options.max_archive_bytes) + ")");
  }
  caffe2::serialize::PyTorchStreamReader& reader = archive.reader();
  try {
    const std::vector<std::string> names = checked_record_names(reader, path, options);
    const std::string expected = lowercase(options.expected_sha256);
    if (!options.verify_integrity && expected.empty()) return "";

    const std::string actual = content_digest(reader, names);
    if (!expected.empty() && actual != expected) {
      throw LoadError(path + " does not have the expected content digest: it has " +
                      short_digest(actual) + ", expected " + short_digest(expected));
    }
    // A plain TorchScript module (no tsrunner files) records no digest: only a pinned one
    // (expected_sha256) can vouch for it; the front-ends say so on stderr.
    if (!options.verify_integrity || !archive.has_tsrunner_records()) return actual;

    std::optional<std::string> text =
        archive.read_extra_file(kDigestRecord, options.max_embedded_file_bytes);
    if (!text) {
      // Say first what else is wrong (not a tsrunner export at all, a newer schema, ...).
      (void)archive.read_manifest(options.max_embedded_file_bytes);
      throw LoadError(path + " has no content digest (" + kDigestRecord +
                      "): it was exported by an older tsrunner or its digest was removed; "
                      "re-export it (or turn verify_integrity off if you trust the file)");
    }
    DigestRecord record;
    try {
      record = parse_digest_record(*text);
    } catch (const LoadError& error) {
      throw LoadError(path + ": " + error.what());
    }
    if (actual != record.content_digest) {
      throw LoadError(path + " was modified after export: its records hash to " +
                      short_digest(actual) + " but the export recorded " +
                      short_digest(record.content_digest) + "; do not load it");
    }
    return actual;
  } catch (const c10::Error& error) {
    throw LoadError(path + " is corrupted: " + first_sentence(error.msg()));
  }
}

}  // namespace tsrunner::detail

namespace tsrunner {

std::string verify_archive(const std::string& path, const RunnerOptions& options) {
  options.validate();
  return detail::verify_open_archive(detail::Archive(path, options.max_archive_bytes), options);
}

}  // namespace tsrunner
