#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "bindings.h"
#include "tsrunner/pipeline.h"

namespace py = pybind11;

namespace tsrunner::python {
namespace {

// The Python shape of one prediction; tsrun's JSON (cpp/tools/prediction_output.cc) uses the
// same keys. Offsets are characters, as in Python strings.
py::dict prediction_to_dict(const Prediction& prediction) {
  py::dict result;
  const std::string& task = prediction.task;
  if (task == "feature-extraction") {
    result["embedding"] = prediction.embedding;
  } else if (task == "text-classification") {
    py::list labels;
    for (const LabelScore& label : prediction.labels) {
      labels.append(py::dict(py::arg("label") = label.label, py::arg("score") = label.score));
    }
    result["labels"] = labels;
  } else if (task == "fill-mask") {
    py::list masks;
    for (const MaskFill& mask : prediction.masks) {
      py::list candidates;
      for (const TokenScore& candidate : mask.candidates) {
        candidates.append(py::dict(py::arg("token") = candidate.id,
                                   py::arg("token_str") = candidate.token,
                                   py::arg("score") = candidate.score));
      }
      masks.append(
          py::dict(py::arg("position") = mask.position, py::arg("candidates") = candidates));
    }
    result["masks"] = masks;
  } else if (task == "token-classification") {
    py::list entities;
    for (const Entity& entity : prediction.entities) {
      entities.append(py::dict(py::arg("entity_group") = entity.entity_group,
                               py::arg("score") = entity.score, py::arg("word") = entity.word,
                               py::arg("start") = entity.span.start,
                               py::arg("end") = entity.span.end));
    }
    result["entities"] = entities;
  } else if (task == "question-answering") {
    if (prediction.answer) {
      const Answer& answer = *prediction.answer;
      result["answer"] =
          py::dict(py::arg("text") = answer.text, py::arg("score") = answer.score,
                   py::arg("start") = answer.span.start, py::arg("end") = answer.span.end);
    } else {
      result["answer"] = py::none();
    }
  }
  return result;
}

}  // namespace

void register_pipeline(py::module_& module) {
  module.attr("MAX_CONCURRENT_BATCHES") = kMaxConcurrentBatches;
  py::class_<Pipeline>(module, "Pipeline",
                       "Text in, task-aware answers out (tsrunner.Runner.predict uses it).")
      .def(py::init([](const Runner& runner, const std::filesystem::path& path,
                       std::optional<size_t> top_k, size_t max_answer_length,
                       std::optional<size_t> doc_stride, std::optional<std::string> prompt_name) {
             py::gil_scoped_release release;
             return std::make_unique<Pipeline>(
                 runner, Tokenizer::from_file(path.string()),
                 TaskOptions{top_k, max_answer_length, doc_stride, prompt_name});
           }),
           py::arg("runner"), py::arg("path"), py::arg("top_k") = py::none(),
           py::arg("max_answer_length") = 15, py::arg("doc_stride") = py::none(),
           py::arg("prompt_name") = py::none(), py::keep_alive<1, 2>(),
           "`runner` runs the export at `path`, whose embedded tokenizer is loaded.")
      .def(
          "predict",
          [](const Pipeline& pipeline, const std::vector<std::string>& texts,
             const std::optional<std::vector<std::string>>& pairs, size_t batch_size,
             size_t concurrent_batches) {
            std::vector<Prediction> predictions;
            {
              py::gil_scoped_release release;
              predictions = pipeline.predict(texts, pairs.value_or(std::vector<std::string>{}),
                                             batch_size, concurrent_batches);
            }
            py::list results;
            for (const Prediction& prediction : predictions) {
              results.append(prediction_to_dict(prediction));
            }
            return results;
          },
          py::arg("texts"), py::arg("text_pairs") = py::none(), py::arg("batch_size") = 32,
          py::arg("concurrent_batches") = 1);
}

}  // namespace tsrunner::python
