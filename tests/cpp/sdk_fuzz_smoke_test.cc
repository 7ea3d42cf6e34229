// The smoke of `make fuzz`'s sdk target inside `make test`: the same driver
// (tests/fuzz/sdk_driver.h) over seeded random bytes and the seed corpus. Under `make sanitize`
// it runs with ASan and UBSan.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "../fuzz/sdk_driver.h"
#include "test_paths.h"

namespace {

TEST(SdkFuzzSmoke, ArbitraryInputsOnlyEverThrowTsrunnerErrors) {
  tsrunner::RunnerOptions options;
  options.threads = 1;
  const tsrunner::Runner runner(tsrunner::testing::fixture("tiny_bert.pt"), options);
  const tsrunner::Pipeline pipeline(runner);
  size_t inputs = 0;
  const std::filesystem::path seeds = std::string(TSR_TEST_DATA_DIR) + "/fuzz/sdk";
  for (const auto& seed : std::filesystem::directory_iterator(seeds)) {
    const std::string bytes = tsrunner::testing::read_bytes(seed.path().string());
    tsrunner::fuzzing::drive_sdk(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                 pipeline);
    ++inputs;
  }
  std::mt19937 rng(28);
  for (int i = 0; i < 400; ++i) {
    std::vector<uint8_t> bytes(std::uniform_int_distribution<size_t>(0, 600)(rng));
    for (uint8_t& byte : bytes) byte = static_cast<uint8_t>(rng());
    tsrunner::fuzzing::drive_sdk(bytes.data(), bytes.size(), pipeline);
    ++inputs;
  }
  EXPECT_GT(inputs, 400u);
}

}  // namespace
