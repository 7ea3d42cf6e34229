#pragma once

#include <pybind11/pybind11.h>

#include <cstddef>
#include <optional>
#include <string>

#include "tsrunner/prediction.h"

namespace tsrunner::python {

// One register_* per file; module.cc only calls them.
void register_errors(pybind11::module_& module);
void register_manifest(pybind11::module_& module);
void register_runner(pybind11::module_& module);
void register_tokenizer(pybind11::module_& module);
void register_pipeline(pybind11::module_& module);
void register_request_queue(pybind11::module_& module);
void register_generator(pybind11::module_& module);
void register_testing(pybind11::module_& module);  // _core._testing

// The task options of one predict call, from the keyword arguments Pipeline.predict and
// RequestQueue.predict share (one place, so both read them alike).
inline TaskOptions task_options(std::optional<size_t> top_k, size_t max_answer_length,
                                std::optional<size_t> doc_stride,
                                std::optional<std::string> prompt_name,
                                std::optional<bool> normalize, std::optional<bool> truncate) {
  TaskOptions options;
  options.top_k = top_k;
  options.max_answer_length = max_answer_length;
  options.doc_stride = doc_stride;
  options.prompt_name = std::move(prompt_name);
  options.normalize = normalize;
  options.truncate = truncate;
  return options;
}

}  // namespace tsrunner::python
