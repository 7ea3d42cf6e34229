#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>
#include <torch/extension.h>

#include "bindings.h"
#include "tsrunner/cpu_info.h"
#include "tsrunner/errors.h"
#include "tsrunner/integrity.h"
#include "tsrunner/runner.h"

namespace py = pybind11;

namespace tsrunner::python {
namespace {

TensorMap tensors_from_dict(const py::object& object) {
  if (!py::isinstance<py::dict>(object)) {
    throw InvalidInput("inputs must be a dict of name to torch.Tensor, got " +
                       std::string(py::str(py::type::of(object).attr("__name__"))));
  }
  TensorMap tensors;
  for (const auto& [key, value] : object.cast<py::dict>()) {
    if (!py::isinstance<py::str>(key)) {
      throw InvalidInput("input names must be strings, got " +
                         std::string(py::str(py::type::of(key).attr("__name__"))));
    }
    const std::string name = key.cast<std::string>();
    if (!THPVariable_Check(value.ptr())) {
      throw InvalidInput("input \"" + name + "\" must be a torch.Tensor, got " +
                         std::string(py::str(py::type::of(value).attr("__name__"))));
    }
    tensors.emplace(name, THPVariable_Unpack(value.ptr()));
  }
  return tensors;
}

RunnerOptions make_options(bool verify_integrity, const std::optional<std::string>& expected_sha256,
                           std::optional<uint64_t> max_archive_bytes,
                           std::optional<uint64_t> max_embedded_file_bytes) {
  RunnerOptions options;
  options.verify_integrity = verify_integrity;
  options.expected_sha256 = expected_sha256.value_or("");
  if (max_archive_bytes) options.max_archive_bytes = *max_archive_bytes;
  if (max_embedded_file_bytes) options.max_embedded_file_bytes = *max_embedded_file_bytes;
  return options;
}

}  // namespace

void register_runner(py::module_& module) {
  module.def(
      "cpu_model", [] { return cpu_info().model; },
      "The CPU's model name (/proc/cpuinfo), as benchmark reports print it.");
  module.def("auto_engine", &auto_engine,
             "The kernel path engine=\"auto\" takes on this machine: \"onednn\" or \"default\".");
  module.def(
      "verify_archive",
      [](const std::filesystem::path& path, std::optional<std::string> expected_sha256,
         std::optional<uint64_t> max_archive_bytes,
         std::optional<uint64_t> max_embedded_file_bytes) {
        const RunnerOptions options =
            make_options(true, expected_sha256, max_archive_bytes, max_embedded_file_bytes);
        py::gil_scoped_release release;
        return verify_archive(path.string(), options);
      },
      py::arg("path"), py::kw_only(), py::arg("expected_sha256") = py::none(),
      py::arg("max_archive_bytes") = py::none(), py::arg("max_embedded_file_bytes") = py::none(),
      "Checks an export's size caps and content digest without loading TorchScript; returns the "
      "digest. Raises LoadError when the file was modified.");
  py::class_<Runner>(module, "Runner",
                     "Loads a tsrunner export and runs it with libtsrunner (C++). Thread-safe.")
      .def(py::init([](const std::filesystem::path& path, std::optional<int> threads,
                       const std::string& device, std::optional<int> interop_threads,
                       int warmup_runs, bool optimize_graph, bool freeze, const std::string& engine,
                       bool verify_integrity, std::optional<std::string> expected_sha256,
                       std::optional<uint64_t> max_archive_bytes,
                       std::optional<uint64_t> max_embedded_file_bytes) {
             RunnerOptions options = make_options(verify_integrity, expected_sha256,
                                                  max_archive_bytes, max_embedded_file_bytes);
             options.threads = threads.value_or(0);
             options.device = device;
             options.interop_threads = interop_threads.value_or(0);
             options.warmup_runs = warmup_runs;
             options.optimize_graph = optimize_graph;
             options.freeze = freeze;
             options.engine = engine;
             py::gil_scoped_release release;
             return std::make_unique<Runner>(path.string(), options);
           }),
           py::arg("path"), py::kw_only(), py::arg("threads") = py::none(),
           py::arg("device") = "cpu", py::arg("interop_threads") = py::none(),
           py::arg("warmup_runs") = 0, py::arg("optimize_graph") = true, py::arg("freeze") = false,
           py::arg("engine") = "auto", py::arg("verify_integrity") = true,
           py::arg("expected_sha256") = py::none(), py::arg("max_archive_bytes") = py::none(),
           py::arg("max_embedded_file_bytes") = py::none())
      .def(
          "run",
          [](const Runner& runner, const py::object& inputs) {
            const TensorMap tensors = tensors_from_dict(inputs);
            TensorMap outputs;
            {
              py::gil_scoped_release release;  // other Python threads run while the model does
              outputs = runner.run(tensors);
            }
            py::dict result;  // in the manifest's output order
            for (const TensorSpec& spec : runner.manifest().outputs) {
              result[py::str(spec.name)] = outputs.at(spec.name);
            }
            return result;
          },
          py::arg("inputs"),
          "Runs named input tensors to a dict of named output tensors (manifest order).")
      .def_property_readonly(
          "manifest",
          [](const Runner& runner) {
            return py::module_::import("json").attr("loads")(runner.manifest().raw_json);
          },
          "The export's manifest as a dict.")
      .def_property_readonly("engine", &Runner::engine,
                             "The kernel path load chose: \"onednn\" or \"default\".")
      .def_property_readonly("engine_reason", &Runner::engine_reason,
                             "Why load chose that kernel path, in a few words.")
      .def_property_readonly("input_names",
                             [](const Runner& runner) {
                               std::vector<std::string> names;
                               for (const auto& spec : runner.manifest().inputs) {
                                 names.push_back(spec.name);
                               }
                               return names;
                             })
      .def_property_readonly("output_names", [](const Runner& runner) {
        std::vector<std::string> names;
        for (const auto& spec : runner.manifest().outputs) names.push_back(spec.name);
        return names;
      });
}

}  // namespace tsrunner::python
