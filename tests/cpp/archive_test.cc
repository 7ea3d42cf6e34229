// Broken and tampered archives from C++: LoadError with one line, never a crash. The full matrix
// of cases is in tests/python/test_archive_faults.py; these prove the C++ API itself.
#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "test_paths.h"
#include "tsrunner/errors.h"
#include "tsrunner/integrity.h"
#include "tsrunner/runner.h"

namespace {

using tsrunner::LoadError;
using tsrunner::Runner;
using tsrunner::testing::fixture;
using tsrunner::testing::read_bytes;

std::string write_temp(const std::string& name, const std::string& bytes) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

// The LoadError message of loading `path`, or a note that none was thrown.
std::string load_error(const std::string& path, tsrunner::RunnerOptions options = {}) {
  try {
    Runner runner(path, options);
  } catch (const LoadError& error) {
    return error.what();
  }
  return "(no LoadError)";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(ArchiveFaults, EmptyFile) {
  const std::string message = load_error(write_temp("empty.pt", ""));
  EXPECT_TRUE(contains(message, "is empty (0 bytes), not a TorchScript archive")) << message;
}

TEST(ArchiveFaults, TruncatedFile) {
  const std::string bytes = read_bytes(fixture("tiny_bert.pt"));
  const std::string message = load_error(write_temp("truncated.pt", bytes.substr(0, 5000)));
  EXPECT_TRUE(contains(message, "is not a TorchScript archive (")) << message;
  EXPECT_FALSE(contains(message, "\n")) << message;
}

TEST(ArchiveFaults, FlippedWeightByteIsReportedAsModified) {
  const std::string original = fixture("tiny_bert.pt");
  size_t offset = 0;
  {
    caffe2::serialize::PyTorchStreamReader reader(original);
    offset = reader.getRecordOffset("data/0");
  }
  std::string bytes = read_bytes(original);
  bytes[offset + 3] = static_cast<char>(bytes[offset + 3] ^ 0x10);
  const std::string message = load_error(write_temp("flipped.pt", bytes));
  EXPECT_TRUE(contains(message, "was modified after export")) << message;
}

TEST(ArchiveFaults, PinnedDigestMustMatch) {
  const std::string path = fixture("tiny_bert.pt");
  const std::string digest = tsrunner::verify_archive(path);
  ASSERT_EQ(digest.size(), 64u);
  tsrunner::RunnerOptions options;
  options.expected_sha256 = digest;
  EXPECT_EQ(Runner(path, options).manifest().task, "feature-extraction");
  options.expected_sha256 = std::string(64, '0');
  EXPECT_TRUE(contains(load_error(path, options), "does not have the expected content digest"));
}

TEST(ArchiveFaults, SizeCapsApplyBeforeReading) {
  tsrunner::RunnerOptions options;
  options.max_archive_bytes = 4096;
  EXPECT_TRUE(contains(load_error(fixture("tiny_bert.pt"), options), "over max_archive_bytes"));
  options = {};
  options.max_embedded_file_bytes = 100;
  EXPECT_TRUE(contains(load_error(fixture("tiny_bert.pt"), options), "max_embedded_file_bytes"));
}

}  // namespace
