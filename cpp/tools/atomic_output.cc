#include "atomic_output.h"

#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <stdexcept>

#include "tsrunner/errors.h"

namespace tsrunner::cli {
namespace {

// The temporary output file, removed if the run is interrupted by a signal.
char g_temp_path[4096] = {0};

void remove_temp_and_exit(int signal_number) {
  if (g_temp_path[0] != '\0') unlink(g_temp_path);
  _exit(128 + signal_number);
}

}  // namespace

void check_output_path(const std::string& path) {
  if (path == "-") return;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw InvalidInput("--output " + path + " is a directory; name a file");
  }
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty() && !std::filesystem::is_directory(parent, ec)) {
    throw InvalidInput("--output " + path + ": directory " + parent.string() + " does not exist");
  }
}

AtomicOutput::AtomicOutput(const std::string& path) : path_(path) {
  if (path_ == "-") return;
  check_output_path(path_);
  temp_ = path_ + ".tmp." + std::to_string(getpid());
  // The handler knows the name before the file exists: a signal in between removes nothing.
  std::strncpy(g_temp_path, temp_.c_str(), sizeof(g_temp_path) - 1);
  std::signal(SIGINT, remove_temp_and_exit);
  std::signal(SIGTERM, remove_temp_and_exit);
  file_.open(temp_, std::ios::binary | std::ios::trunc);
  if (!file_) throw std::runtime_error("cannot write " + temp_ + ": " + std::strerror(errno));
}

AtomicOutput::~AtomicOutput() {
  if (!temp_.empty() && !committed_) {
    file_.close();
    std::error_code ignored;
    std::filesystem::remove(temp_, ignored);
  }
  g_temp_path[0] = '\0';
}

std::ostream& AtomicOutput::stream() { return path_ == "-" ? std::cout : file_; }

void AtomicOutput::commit() {
  stream().flush();
  if (!stream()) throw std::runtime_error("writing " + path_ + " failed");
  if (temp_.empty()) return;
  file_.close();
  std::filesystem::rename(temp_, path_);
  committed_ = true;
}

}  // namespace tsrunner::cli
