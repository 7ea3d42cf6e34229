#include <pybind11/stl.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>

#include "bindings.h"
#include "tsrunner/errors.h"
#include "tsrunner/prediction_json.h"
#include "tsrunner/request_queue.h"

namespace py = pybind11;

namespace tsrunner::python {

void register_request_queue(py::module_& module) {
  // Made by over(), which keeps the pipeline in the queue's __dict__ (dynamic_attr): the
  // collector sees every edge of runner -> queue -> pipeline -> runner and frees them together.
  py::class_<RequestQueue>(module, "RequestQueue",
                           "The library's one request path: calls from any number of threads are "
                           "batched together by a token budget (tsrunner.Runner.predict uses it).",
                           py::dynamic_attr())
      .def_static(
          "over",
          [](py::object pipeline, size_t workers, size_t max_batch_requests,
             size_t max_batch_tokens, double max_wait_ms, int intra_op_threads) {
            if (workers < 1 || workers > kMaxConcurrentBatches) {
              throw InvalidInput("workers must be from 1 to " +
                                 std::to_string(kMaxConcurrentBatches));
            }
            QueueOptions options;
            options.workers = workers;
            options.max_batch_requests = max_batch_requests;
            options.max_batch_tokens = max_batch_tokens;
            options.max_wait = std::chrono::microseconds(static_cast<int64_t>(max_wait_ms * 1000));
            options.intra_op_threads = intra_op_threads;
            py::object queue =
                py::cast(std::make_unique<RequestQueue>(pipeline.cast<const Pipeline&>(), options));
            queue.attr("_pipeline") = pipeline;
            return queue;
          },
          py::arg("pipeline"), py::arg("workers") = 1, py::arg("max_batch_requests") = 64,
          py::arg("max_batch_tokens") = 16384, py::arg("max_wait_ms") = 0.0,
          py::arg("intra_op_threads") = 0)
      .def(
          "predict",
          [](RequestQueue& queue, const std::vector<std::string>& texts,
             const std::optional<std::vector<std::string>>& pairs,
             std::optional<std::vector<std::vector<std::string>>> choices, size_t batch_size,
             std::optional<size_t> top_k, size_t max_answer_length,
             std::optional<size_t> doc_stride, std::optional<std::string> prompt_name,
             std::optional<bool> normalize, std::optional<bool> truncate) {
            const TaskOptions options = task_options(top_k, max_answer_length, doc_stride,
                                                     prompt_name, normalize, truncate);
            std::string json_text;
            {
              // Tokenizes here, then waits for the batch its texts join: other Python threads
              // submit meanwhile and share it.
              py::gil_scoped_release release;
              std::future<std::vector<Prediction>> answer =
                  choices ? queue.submit_choices(texts, std::move(*choices), options, 0, batch_size)
                          : queue.submit(texts, pairs.value_or(std::vector<std::string>{}), options,
                                         0, batch_size);
              json_text = predictions_to_json(answer.get());
            }
            return py::module_::import("json").attr("loads")(json_text);
          },
          py::arg("texts"), py::arg("text_pairs") = py::none(), py::arg("choices") = py::none(),
          py::arg("batch_size") = 32, py::arg("top_k") = py::none(),
          py::arg("max_answer_length") = 15, py::arg("doc_stride") = py::none(),
          py::arg("prompt_name") = py::none(), py::arg("normalize") = py::none(),
          py::arg("truncate") = py::none())
      .def("queue_depth", &RequestQueue::queue_depth, "Inputs and jobs waiting.")
      .def(
          "stats",
          [](const RequestQueue& queue) {
            const QueueStats stats = queue.stats();
            py::dict out;
            out["submissions"] = stats.submissions;
            out["inputs"] = stats.inputs;
            out["batches"] = stats.batches;
            out["batched_inputs"] = stats.batched_inputs;
            out["padded_tokens"] = stats.padded_tokens;
            out["lone_batches"] = stats.lone_batches;
            out["largest_batch"] = stats.largest_batch;
            return out;
          },
          "What the queue has done since it was made (counts of submissions, inputs, batches).")
      .def_property_readonly("workers",
                             [](const RequestQueue& queue) { return queue.options().workers; })
      .def("stop", &RequestQueue::stop, py::call_guard<py::gil_scoped_release>(),
           "Finishes what waits, then joins the workers; later calls raise.");
}

}  // namespace tsrunner::python
