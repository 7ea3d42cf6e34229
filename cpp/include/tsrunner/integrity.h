#pragma once

#include <string>

#include "tsrunner/export.h"
#include "tsrunner/options.h"

namespace tsrunner {

// Checks a tsrunner archive without deserialising any TorchScript: the size caps of `options`,
// that it is a readable zip with one entry per record name, and (when
// options.verify_integrity) that its records still hash to the SHA-256 content digest recorded
// at export, and to options.expected_sha256 when that is set. Returns the content digest
// (64 hex digits; empty when verification is off). Throws LoadError naming the problem; a
// mismatch says the file was modified. Runner's constructor calls this first.
TSR_API std::string verify_archive(const std::string& path, const RunnerOptions& options = {});

}  // namespace tsrunner
