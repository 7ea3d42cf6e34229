#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "bindings.h"
#include "tsrunner/pipeline.h"

namespace py = pybind11;

namespace tsrunner::python {

void register_pipeline(py::module_& module) {
  py::class_<Pipeline>(module, "Pipeline",
                       "Text in, task-aware answers out (tsrunner.Runner.predict uses it).")
      .def(py::init([](const Runner& runner, const std::filesystem::path& path) {
             py::gil_scoped_release release;
             return std::make_unique<Pipeline>(runner, Tokenizer::from_file(path.string()));
           }),
           py::arg("runner"), py::arg("path"), py::keep_alive<1, 2>(),
           "`runner` runs the export at `path`, whose embedded tokenizer is loaded.")
      .def(
          "predict",
          [](const Pipeline& pipeline, const std::vector<std::string>& texts,
             const std::optional<std::vector<std::string>>& pairs, size_t batch_size) {
            std::vector<Prediction> predictions;
            {
              py::gil_scoped_release release;
              predictions =
                  pipeline.predict(texts, pairs.value_or(std::vector<std::string>{}), batch_size);
            }
            py::list results;
            for (const Prediction& prediction : predictions) {
              py::dict result;
              result["embedding"] = prediction.embedding;
              results.append(result);
            }
            return results;
          },
          py::arg("texts"), py::arg("text_pairs") = py::none(), py::arg("batch_size") = 32);
}

}  // namespace tsrunner::python
