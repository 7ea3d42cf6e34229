#pragma once

#include <pybind11/pybind11.h>

namespace tsrunner::python {

// One register_* per file; module.cc only calls them.
void register_errors(pybind11::module_& module);
void register_manifest(pybind11::module_& module);
void register_runner(pybind11::module_& module);
void register_tokenizer(pybind11::module_& module);
void register_pipeline(pybind11::module_& module);
void register_request_queue(pybind11::module_& module);
void register_generator(pybind11::module_& module);

}  // namespace tsrunner::python
