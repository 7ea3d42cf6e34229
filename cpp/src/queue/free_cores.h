#pragma once

#include <string>

namespace tsrunner::detail {

// Tasks of other processes runnable on this machine at this instant: the kernel's count
// (/proc/loadavg's fourth field, or the file at `loadavg_path`) less this process's running
// threads (/proc/self/task: the asking worker, an OpenMP helper still spinning, an HTTP thread).
// -1 when it cannot be read. RequestQueue gives a lone batch every core only when they are free.
long other_runnable_tasks(const std::string& loadavg_path);

}  // namespace tsrunner::detail
