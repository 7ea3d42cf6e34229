#include "tsrunner/version.h"

#include <gtest/gtest.h>

#include <string>

#include "tsrunner/errors.h"

namespace {

// The macros come from the same _version.py as the library's version(): built together, they
// must agree, and check_version() must pass.
TEST(Version, MacrosMatchTheLibrary) {
  EXPECT_STREQ(TSRUNNER_VERSION_STRING, tsrunner::version());
  const std::string composed = std::to_string(TSRUNNER_VERSION_MAJOR) + "." +
                               std::to_string(TSRUNNER_VERSION_MINOR) + "." +
                               std::to_string(TSRUNNER_VERSION_PATCH);
  EXPECT_EQ(std::string(tsrunner::version()).rfind(composed, 0), 0u) << composed;
  EXPECT_EQ(TSRUNNER_VERSION,
            TSRUNNER_VERSION_MAJOR * 10000 + TSRUNNER_VERSION_MINOR * 100 + TSRUNNER_VERSION_PATCH);
  EXPECT_NO_THROW(tsrunner::check_version());
}

// The macros are usable in the preprocessor, where apps gate code on a release.
#if TSRUNNER_VERSION < 100
#error "TSRUNNER_VERSION is below 0.1.0"
#endif

TEST(Version, CheckRefusesHeadersOfAnotherRelease) {
  try {
    tsrunner::check_version("0.0.1");
    FAIL() << "check_version accepted headers of another version";
  } catch (const tsrunner::Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("headers 0.0.1"), std::string::npos) << message;
    EXPECT_NE(message.find(std::string("libtsrunner ") + tsrunner::version()), std::string::npos)
        << message;
  }
}

}  // namespace
