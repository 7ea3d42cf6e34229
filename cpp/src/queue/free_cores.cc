#include "queue/free_cores.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace tsrunner::detail {

long other_runnable_tasks(const std::string& loadavg_path) {
  std::ifstream loadavg(loadavg_path);
  double one, five, fifteen;
  long running = 0;
  char slash = 0;
  if (!(loadavg >> one >> five >> fifteen >> running >> slash) || slash != '/') return -1;
  long ours = 0;
  std::error_code error;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", error)) {
    std::ifstream stat(task.path() / "stat");
    std::string line;
    std::getline(stat, line);
    const size_t name_end = line.rfind(')');  // the state follows the name, which may hold ')'
    if (name_end != std::string::npos && name_end + 2 < line.size() && line[name_end + 2] == 'R') {
      ++ours;
    }
  }
  return std::max(0L, running - ours);
}

}  // namespace tsrunner::detail
