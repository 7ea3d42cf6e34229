#include <pybind11/pybind11.h>

#include "bindings.h"
#include "tsrunner/version.h"

PYBIND11_MODULE(_core, module) {
  module.doc() = "tsrunner's C++ runner (libtsrunner), exposed to Python";
  module.attr("__version__") = tsrunner::version();
  module.attr("torch_version") = tsrunner::torch_version();
  tsrunner::python::register_errors(module);
  tsrunner::python::register_manifest(module);
  tsrunner::python::register_runner(module);
  tsrunner::python::register_tokenizer(module);
  tsrunner::python::register_pipeline(module);
  tsrunner::python::register_request_queue(module);
  tsrunner::python::register_generator(module);
  tsrunner::python::register_testing(module);
}
