#include <pybind11/stl.h>

#include "bindings.h"
#include "tsrunner/pipeline.h"
#include "tsrunner/prediction_json.h"

namespace py = pybind11;

namespace tsrunner::python {

void register_pipeline(py::module_& module) {
  module.attr("MAX_CONCURRENT_BATCHES") = kMaxConcurrentBatches;
  // dynamic_attr: a pipeline made by over() holds its runner in its __dict__, where the garbage
  // collector sees the cycle runner -> pipeline -> runner (keep_alive hides it, so a Runner that
  // had predicted was never freed).
  py::class_<Pipeline>(module, "Pipeline",
                       "Text in, task-aware answers out (tsrunner.Runner.predict uses it).",
                       py::dynamic_attr())
      .def(py::init([](const Runner& runner, std::optional<size_t> top_k, size_t max_answer_length,
                       std::optional<size_t> doc_stride, std::optional<std::string> prompt_name) {
             py::gil_scoped_release release;
             return std::make_unique<Pipeline>(
                 runner, task_options(top_k, max_answer_length, doc_stride, prompt_name,
                                      std::nullopt, std::nullopt));
           }),
           py::arg("runner"), py::arg("top_k") = py::none(), py::arg("max_answer_length") = 15,
           py::arg("doc_stride") = py::none(), py::arg("prompt_name") = py::none(),
           py::keep_alive<1, 2>(),
           "Over `runner` and the tokenizer it loaded from the verified archive.")
      .def_static(
          "over",
          [](py::object runner) {
            const Runner& native = runner.cast<const Runner&>();
            std::unique_ptr<Pipeline> made;
            {
              py::gil_scoped_release release;
              made = std::make_unique<Pipeline>(native);
            }
            py::object pipeline = py::cast(std::move(made));
            pipeline.attr("_runner") = runner;  // keeps it alive, visibly to the collector
            return pipeline;
          },
          py::arg("runner"),
          "Over `runner` with default task options; a cycle through the runner is collectable.")
      .def(
          "predict",
          [](const Pipeline& pipeline, const std::vector<std::string>& texts,
             const std::optional<std::vector<std::string>>& pairs, size_t batch_size,
             size_t concurrent_batches, std::optional<size_t> top_k, size_t max_answer_length,
             std::optional<size_t> doc_stride, std::optional<std::string> prompt_name,
             std::optional<bool> normalize, std::optional<bool> truncate) {
            // Task options travel with the call: one pipeline serves every combination.
            const TaskOptions options = task_options(top_k, max_answer_length, doc_stride,
                                                     prompt_name, normalize, truncate);
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
          py::arg("prompt_name") = py::none(), py::arg("normalize") = py::none(),
          py::arg("truncate") = py::none());
}

}  // namespace tsrunner::python
