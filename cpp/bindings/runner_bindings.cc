#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>
#include <torch/extension.h>

#include "bindings.h"
#include "tsrunner/cpu_info.h"
#include "tsrunner/errors.h"
#include "tsrunner/integrity.h"
#include "tsrunner/runner.h"
#include "tsrunner/tokenizer.h"

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

RunnerOptions verify_options(const std::optional<std::string>& expected_sha256,
                             std::optional<uint64_t> max_archive_bytes,
                             std::optional<uint64_t> max_embedded_file_bytes) {
  RunnerOptions options;
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
  module.def(
      "auto_kernel_path", &auto_kernel_path,
      "The kernel path kernel_path=\"auto\" takes on this machine: \"onednn\" or \"default\".");
  module.def(
      "verify_archive",
      [](const std::filesystem::path& path, std::optional<std::string> expected_sha256,
         std::optional<uint64_t> max_archive_bytes,
         std::optional<uint64_t> max_embedded_file_bytes) {
        const RunnerOptions options =
            verify_options(expected_sha256, max_archive_bytes, max_embedded_file_bytes);
        py::gil_scoped_release release;
        return verify_archive(path.string(), options);
      },
      py::arg("path"), py::kw_only(), py::arg("expected_sha256") = py::none(),
      py::arg("max_archive_bytes") = py::none(), py::arg("max_embedded_file_bytes") = py::none(),
      "Checks an export's size caps and content digest without loading TorchScript; returns the "
      "digest. Raises LoadError when the file was modified.");
  module.attr("MAX_THREADS") = kMaxThreads;
  // Bound once, field by field: a field added in C++ reaches Python by one line here, and
  // tests/python/test_runner_options.py fails until it does.
  py::class_<RunnerOptions>(module, "RunnerOptions",
                            "tsrunner::RunnerOptions: how a Runner loads and runs an export "
                            "(docs/cpp-api.md).")
      .def(py::init<>())
      .def_readwrite("threads", &RunnerOptions::threads)
      .def_readwrite("interop_threads", &RunnerOptions::interop_threads)
      .def_readwrite("device", &RunnerOptions::device)
      .def_readwrite("warmup_runs", &RunnerOptions::warmup_runs)
      .def_readwrite("warmup_sequence", &RunnerOptions::warmup_sequence)
      .def_readwrite("optimize_graph", &RunnerOptions::optimize_graph)
      .def_readwrite("freeze", &RunnerOptions::freeze)
      .def_readwrite("kernel_path", &RunnerOptions::kernel_path)
      .def_readwrite("compute", &RunnerOptions::compute)
      .def_readwrite("fused_attention", &RunnerOptions::fused_attention)
      .def_readwrite("fused_layer_norm", &RunnerOptions::fused_layer_norm)
      .def_readwrite("bf16_kernel", &RunnerOptions::bf16_kernel)
      .def_readwrite("small_gemm_rows", &RunnerOptions::small_gemm_rows)
      .def_readwrite("max_archive_bytes", &RunnerOptions::max_archive_bytes)
      .def_readwrite("max_embedded_file_bytes", &RunnerOptions::max_embedded_file_bytes)
      .def_readwrite("verify_integrity", &RunnerOptions::verify_integrity)
      .def_readwrite("expected_sha256", &RunnerOptions::expected_sha256)
      .def("validate", &RunnerOptions::validate,
           "Raises InvalidInput (a ValueError) naming the first option out of range.");
  py::class_<Runner>(module, "Runner",
                     "Loads a tsrunner export and runs it with libtsrunner (C++). Thread-safe.")
      .def(py::init([](const std::filesystem::path& path, const RunnerOptions& options) {
             py::gil_scoped_release release;
             return std::make_unique<Runner>(path.string(), options);
           }),
           py::arg("path"), py::arg("options") = RunnerOptions{})
      .def_property_readonly(
          "options", [](const Runner& runner) { return runner.options(); },
          "A copy of the RunnerOptions this runner was loaded with.")
      .def_property_readonly("has_tokenizer", &Runner::has_tokenizer)
      .def_property_readonly(
          "tokenizer",
          [](const Runner& runner) -> const Tokenizer& {
            py::gil_scoped_release release;  // the first call parses tokenizer.json
            return runner.tokenizer();
          },
          py::return_value_policy::reference_internal,
          "The export's embedded tokenizer, parsed from the bytes that were verified (the file "
          "is not reopened). Raises LoadError when the export has none.")
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
      .def_property_readonly("kernel_path", &Runner::kernel_path,
                             "The kernel path load chose: \"onednn\" or \"default\".")
      .def_property_readonly("kernel_path_reason", &Runner::kernel_path_reason,
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
