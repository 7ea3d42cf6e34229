#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "bindings.h"
#include "tsrunner/archive_records.h"
#include "tsrunner/manifest.h"

namespace py = pybind11;

namespace tsrunner::python {

void register_manifest(py::module_& module) {
  module.attr("MANIFEST_SCHEMA_VERSION") = kManifestSchemaVersion;
  std::vector<std::string> known_tasks;
  for (Task task : kKnownTasks) known_tasks.emplace_back(task_name(task));
  module.attr("KNOWN_TASKS") = known_tasks;  // the tasks libtsrunner parses (tsrunner/task.h)
  module.def(
      "read_manifest",
      [](const std::filesystem::path& path) {
        return Manifest::read_from_archive(path.string()).raw_json;
      },
      py::arg("path"),
      "The manifest JSON of an export, read and checked without loading any TorchScript code.");
  module.def(
      "read_archive_file",
      [](const std::filesystem::path& path, const std::string& name) {
        return read_archive_file(path.string(), name);
      },
      py::arg("path"), py::arg("name"),
      "A file embedded in an export (e.g. \"tsrunner/tokenizer.json\"), or None when absent. "
      "No TorchScript code is loaded.");
  module.def(
      "describe_manifest",
      [](const std::string& json_text) { return Manifest::parse(json_text).describe(); },
      py::arg("json_text"), "The readable summary that `tsrun info` prints.");
}

}  // namespace tsrunner::python
