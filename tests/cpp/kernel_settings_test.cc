// The kernel switches: RunnerOptions fields per runner, their TSR_* environment variables as
// defaults read in one place, bad values refused naming their source.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "kernel_settings.h"
#include "test_paths.h"
#include "tsrunner/errors.h"
#include "tsrunner/runner.h"

namespace {

using tsrunner::RunnerOptions;
using tsrunner::detail::KernelSettings;
using tsrunner::detail::resolve_kernel_settings;

// Sets an environment variable for one scope.
class ScopedEnvironment {
 public:
  ScopedEnvironment(const char* name, const char* value) : name_(name) { setenv(name, value, 1); }
  ~ScopedEnvironment() { unsetenv(name_); }

 private:
  const char* name_;
};

TEST(KernelSettings, DefaultsWithoutOptionsOrEnvironment) {
  const KernelSettings settings = resolve_kernel_settings(RunnerOptions{});
  EXPECT_EQ(settings.attention, KernelSettings::Attention::kInPlace);
  EXPECT_TRUE(settings.layer_norm);
  EXPECT_TRUE(settings.bf16_kernel);
  EXPECT_EQ(settings.small_gemm_rows, 48);
}

TEST(KernelSettings, TheEnvironmentGivesDefaultsAndOptionsWin) {
  const ScopedEnvironment attention("TSR_FUSED_ATTENTION", "0");
  const ScopedEnvironment layer_norm("TSR_FUSED_LAYER_NORM", "0");
  const ScopedEnvironment bf16("TSR_BF16_KERNEL", "0");
  const ScopedEnvironment rows("TSR_SMALL_GEMM_ROWS", "7");
  const KernelSettings from_environment = resolve_kernel_settings(RunnerOptions{});
  EXPECT_EQ(from_environment.attention, KernelSettings::Attention::kOff);
  EXPECT_FALSE(from_environment.layer_norm);
  EXPECT_FALSE(from_environment.bf16_kernel);
  EXPECT_EQ(from_environment.small_gemm_rows, 7);

  RunnerOptions options;
  options.fused_attention = "op";
  options.fused_layer_norm = true;
  options.bf16_kernel = true;
  options.small_gemm_rows = 0;
  const KernelSettings from_options = resolve_kernel_settings(options);
  EXPECT_EQ(from_options.attention, KernelSettings::Attention::kOp);
  EXPECT_TRUE(from_options.layer_norm);
  EXPECT_TRUE(from_options.bf16_kernel);
  EXPECT_EQ(from_options.small_gemm_rows, 0);
}

TEST(KernelSettings, BadValuesNameTheirSource) {
  const auto message = [](const RunnerOptions& options) {
    try {
      (void)resolve_kernel_settings(options);
    } catch (const tsrunner::InvalidInput& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  RunnerOptions options;
  options.fused_attention = "sometimes";
  EXPECT_EQ(message(options), "fused_attention must be on, op or off, not \"sometimes\"");
  options = RunnerOptions{};
  options.small_gemm_rows = -1;
  EXPECT_EQ(message(options), "small_gemm_rows must be a row count >= 0, not -1");
  {
    const ScopedEnvironment rows("TSR_SMALL_GEMM_ROWS", "many");
    EXPECT_EQ(message(RunnerOptions{}),
              "TSR_SMALL_GEMM_ROWS must be a row count >= 0, not \"many\"");
  }
  {
    const ScopedEnvironment layer_norm("TSR_FUSED_LAYER_NORM", "maybe");
    EXPECT_EQ(message(RunnerOptions{}),
              "TSR_FUSED_LAYER_NORM must be 1 or 0 (on/off), not \"maybe\"");
  }
  EXPECT_THROW(options.validate(), tsrunner::InvalidInput);  // validate() checks them too
}

TEST(KernelSettings, TwoRunnersInOneProcessTakeTheirOwn) {
  RunnerOptions plain;
  plain.threads = 1;
  plain.kernel_path = "onednn";
  plain.fused_attention = "off";
  plain.fused_layer_norm = false;
  RunnerOptions fused = plain;
  fused.fused_attention = "on";
  fused.fused_layer_norm = true;
  const tsrunner::Runner without(tsrunner::testing::fixture("tiny_bert.pt"), plain);
  const tsrunner::Runner with(tsrunner::testing::fixture("tiny_bert.pt"), fused);
  EXPECT_EQ(without.kernel_path_reason().find("short-sequence kernel"), std::string::npos)
      << without.kernel_path_reason();
  EXPECT_EQ(without.kernel_path_reason().find("layer norms"), std::string::npos);
  EXPECT_NE(with.kernel_path_reason().find("attentions on the short-sequence kernel"),
            std::string::npos)
      << with.kernel_path_reason();
  EXPECT_NE(with.kernel_path_reason().find("layer norms on the few-row kernel"), std::string::npos);
}

}  // namespace
