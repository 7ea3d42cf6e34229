#pragma once

#include <functional>
#include <string>

namespace tsrunner::detail {

// Tests only: called with the model path after Runner has verified the archive and before it
// deserialises any TorchScript, so a test can replace or rewrite the file in exactly that window
// (tests/cpp/archive_test.cc, tests/python/test_open_once.py). Empty (the default) in normal use.
// Set it only while no Runner is being constructed.
using AfterVerifyHook = std::function<void(const std::string& path)>;
void set_after_verify_hook(AfterVerifyHook hook);

// Tests only: called inside every Runner::run with the runner's intra-op thread count in effect,
// just before the model runs (tests/cpp/runner_lifetime_test.cc). Set it only while no run is in
// flight.
using RunHook = std::function<void()>;
void set_run_hook(RunHook hook);

}  // namespace tsrunner::detail
