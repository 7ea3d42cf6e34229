#include <pybind11/stl.h>

#include "bindings.h"
#include "tsrunner/pipeline.h"
#include "tsrunner/prediction_json.h"

namespace py = pybind11;

namespace tsrunner::python {

void register_pipeline(py::module_& module) {
  module.attr("MAX_CONCURRENT_BATCHES") = kMaxConcurrentBatches;
  py::class_<Pipeline>(module, "Pipeline",
                       "Text in, task-aware answers out (tsrunner.Runner.predict uses it).")
      .def(py::init([](const Runner& runner, std::optional<size_t> top_k, size_t max_answer_length,
                       std::optional<size_t> doc_stride, std::optional<std::string> prompt_name) {
             py::gil_scoped_release release;
             return std::make_unique<Pipeline>(
                 runner, TaskOptions{top_k, max_answer_length, doc_stride, prompt_name});
           }),
           py::arg("runner"), py::arg("top_k") = py::none(), py::arg("max_answer_length") = 15,
           py::arg("doc_stride") = py::none(), py::arg("prompt_name") = py::none(),
           py::keep_alive<1, 2>(),
           "Over `runner` and the tokenizer it loaded from the verified archive.")
      .def(
          "predict",
          [](const Pipeline& pipeline, const std::vector<std::string>& texts,
             const std::optional<std::vector<std::string>>& pairs, size_t batch_size,
             size_t concurrent_batches, std::optional<size_t> top_k, size_t max_answer_length,
             std::optional<size_t> doc_stride, std::optional<std::string> prompt_name) {
            // Task options travel with the call: one pipeline serves every combination.
            const TaskOptions options{top_k, max_answer_length, doc_stride, prompt_name, {}};
            // The same JSON as tsrun's (prediction_json.h), so both answer with the same keys
            // and the same numbers; json.loads is C code, about as fast as building the dicts
            // here.
            std::string json_text;
            {
              py::gil_scoped_release release;
              json_text = predictions_to_json(
                  pipeline.predict(texts, pairs.value_or(std::vector<std::string>{}), batch_size,
                                   concurrent_batches, options));
            }
            return py::module_::import("json").attr("loads")(json_text);
          },
          py::arg("texts"), py::arg("text_pairs") = py::none(), py::arg("batch_size") = 32,
          py::arg("concurrent_batches") = 1, py::arg("top_k") = py::none(),
          py::arg("max_answer_length") = 15, py::arg("doc_stride") = py::none(),
          py::arg("prompt_name") = py::none());
}

}  // namespace tsrunner::python
