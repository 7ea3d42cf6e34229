// libtsrunner exports its public API and nothing else (hidden visibility, tsrunner/export.h):
// what an app needs crosses the shared-library boundary (functions, exception types that catch
// by type), and the internals are not in its dynamic symbol table. This executable links only
// the shared library.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <typeinfo>

#include "tsrunner/errors.h"
#include "tsrunner/manifest.h"
#include "tsrunner/runner.h"

namespace {

// Whether the process's global scope (this executable and libtsrunner.so) defines `symbol`.
bool exported(const char* symbol) { return dlsym(RTLD_DEFAULT, symbol) != nullptr; }

TEST(Export, ErrorsThrownInsideTheLibraryAreCaughtByTheirType) {
  try {
    tsrunner::Runner runner("/nonexistent/model.pt");
    FAIL() << "a missing file loaded";
  } catch (const tsrunner::LoadError& error) {
    EXPECT_EQ(typeid(error), typeid(tsrunner::LoadError));
    EXPECT_NE(std::string(error.what()).find("/nonexistent/model.pt"), std::string::npos)
        << error.what();
  }
  EXPECT_THROW(tsrunner::Manifest::parse("{"), tsrunner::Error);
  try {
    tsrunner::RunnerOptions options;
    options.threads = -1;
    options.validate();
    FAIL() << "threads=-1 validated";
  } catch (const tsrunner::InvalidInput& error) {
    EXPECT_EQ(typeid(error), typeid(tsrunner::InvalidInput));
  }
}

TEST(Export, ThePublicApiIsInTheDynamicSymbolTable) {
  EXPECT_TRUE(exported("_ZN8tsrunner7versionEv"));                   // tsrunner::version()
  EXPECT_TRUE(exported("_ZN8tsrunner16auto_kernel_pathB5cxx11Ev"));  // auto_kernel_path()
  EXPECT_TRUE(exported("_ZTIN8tsrunner9LoadErrorE"));                // typeinfo for LoadError
  EXPECT_TRUE(exported("tsr_runner_load"));                          // the C API
}

TEST(Export, InternalsAreNot) {
  EXPECT_FALSE(exported("_ZN8tsrunner6detail16intra_op_threadsEv"));
  EXPECT_FALSE(exported("_ZN8tsrunner6detail20small_gemm_supportedEv"));              // a kernel
  EXPECT_FALSE(exported("_ZN8tsrunner6detail14fuse_attentionERN5torch3jit5GraphE"));  // a rewrite
}

}  // namespace
