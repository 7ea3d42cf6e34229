// Issue 11.1: the Runner opens an archive once and takes the digest check, the manifest, the
// tokenizer and the TorchScript from that one open file. A hook changes the file between the
// check and the load: the verified content is what runs, or the load is refused.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "test_paths.h"
#include "tsrunner/errors.h"
#include "tsrunner/runner.h"
#include "tsrunner/testing.h"

namespace {

namespace fs = std::filesystem;
using tsrunner::LoadError;
using tsrunner::Runner;
using tsrunner::TensorMap;
using tsrunner::testing::fixture;
using tsrunner::testing::read_bytes;

// Installs a hook for one scope, so a failing test leaves none behind.
class HookScope {
 public:
  explicit HookScope(tsrunner::testing::AfterVerifyHook hook) {
    tsrunner::testing::set_after_verify_hook(std::move(hook));
  }
  ~HookScope() { tsrunner::testing::set_after_verify_hook({}); }
};

std::string temp_copy(const std::string& source, const std::string& name) {
  const std::string path = ::testing::TempDir() + "/" + name;
  fs::copy_file(source, path, fs::copy_options::overwrite_existing);
  return path;
}

TensorMap ids_input() {
  return {{"input_ids", at::tensor({101, 7592, 2088, 102}, at::kLong).unsqueeze(0)}};
}

TEST(OpenOnce, AFileRenamedOverThePathAfterTheCheckIsNotWhatRuns) {
  const std::string path = temp_copy(fixture("tiny_bert.pt"), "open_once_rename.pt");
  const std::string other = temp_copy(fixture("minilm.pt"), "open_once_other.pt");
  int swaps = 0;
  std::optional<Runner> loaded;
  {
    const HookScope hook([&](const std::string& loading) {
      fs::rename(other, loading);  // the path now names minilm, a different (verified) model
      ++swaps;
    });
    loaded.emplace(path);
  }
  const Runner& runner = *loaded;
  ASSERT_EQ(swaps, 1);
  EXPECT_EQ(tsrunner::Manifest::read_from_archive(path).max_length, 128);  // minilm on disk
  EXPECT_EQ(runner.manifest().max_length, 64);                             // tiny_bert loaded
  EXPECT_EQ(runner.tokenizer().max_length(), std::optional<size_t>(64));

  const Runner reference(fixture("tiny_bert.pt"));
  const TensorMap got = runner.run(ids_input());
  const TensorMap expected = reference.run(ids_input());
  ASSERT_EQ(got.at("last_hidden_state").size(-1), 32);  // tiny_bert's width, not minilm's 384
  for (const auto& [name, tensor] : expected) {
    EXPECT_TRUE(got.at(name).equal(tensor)) << name;
  }
}

TEST(OpenOnce, AFileWrittenInPlaceAfterTheCheckIsRefused) {
  const std::string path = temp_copy(fixture("tiny_bert.pt"), "open_once_rewrite.pt");
  const std::string other = read_bytes(fixture("minilm.pt"));
  const HookScope hook([&](const std::string& loading) {
    std::ofstream(loading, std::ios::binary | std::ios::trunc) << other;  // the same inode
  });
  try {
    const Runner runner(path);
    FAIL() << "a file rewritten between the check and the load was loaded";
  } catch (const LoadError& error) {
    EXPECT_NE(std::string(error.what()).find("was written to while it was being loaded"),
              std::string::npos)
        << error.what();
  }
}

TEST(OpenOnce, TheRunnersTokenizerIsTheEmbeddedOne) {
  const Runner runner(fixture("tiny_bert.pt"));
  ASSERT_TRUE(runner.has_tokenizer());
  const tsrunner::Tokenizer& tokenizer = runner.tokenizer();
  EXPECT_EQ(&tokenizer, &runner.tokenizer());  // parsed once
  const tsrunner::Tokenizer from_file = tsrunner::Tokenizer::from_file(fixture("tiny_bert.pt"));
  EXPECT_EQ(tokenizer.encode("hello world").ids, from_file.encode("hello world").ids);
  EXPECT_EQ(tokenizer.max_length(), from_file.max_length());
}

TEST(RunnerOptionsLimits, ThreadCountsAreCapped) {
  tsrunner::RunnerOptions options;
  options.threads = tsrunner::kMaxThreads;
  options.interop_threads = tsrunner::kMaxThreads;
  EXPECT_NO_THROW(options.validate());
  options.threads = 100000;
  try {
    options.validate();
    FAIL() << "threads=100000 accepted";
  } catch (const tsrunner::InvalidInput& error) {
    EXPECT_EQ(std::string(error.what()), "threads must be at most 1024, not 100000");
  }
  options.threads = 0;
  options.interop_threads = tsrunner::kMaxThreads + 1;
  EXPECT_THROW(options.validate(), tsrunner::InvalidInput);
}

}  // namespace
