// The public CPU description (tsrunner/cpu_info.h), read from /proc/cpuinfo once per process.
#include "tsrunner/cpu_info.h"

#include <fstream>
#include <sstream>
#include <string>

namespace tsrunner {
namespace {

bool has_word(const std::string& words, const std::string& word) {
  std::istringstream stream(words);
  std::string each;
  while (stream >> each) {
    if (each == word) return true;
  }
  return false;
}

CpuInfo read_cpu_info() {
  CpuInfo info;
  info.model = "unknown";
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  bool have_model = false;
  bool have_flags = false;
  while (std::getline(cpuinfo, line) && !(have_model && have_flags)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (key == "model name" && !have_model) {
      info.model = value;
      have_model = true;
    } else if (key == "flags" && !have_flags) {
      info.avx2 = has_word(value, "avx2");
      info.avx512 = has_word(value, "avx512f");
      info.avx512_bf16 = has_word(value, "avx512_bf16");
      info.flags = value;
      have_flags = true;
    }
  }
  return info;
}

}  // namespace

bool CpuInfo::has_flag(const std::string& flag) const { return has_word(flags, flag); }

const CpuInfo& cpu_info() {
  static const CpuInfo info = read_cpu_info();
  return info;
}

}  // namespace tsrunner
