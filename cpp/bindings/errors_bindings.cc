#include <pybind11/pybind11.h>

#include "bindings.h"
#include "tsrunner/errors.h"

namespace py = pybind11;

namespace tsrunner::python {

// The Python classes live in tsrunner/errors.py so that Python code raises the same types;
// InvalidInput is a ValueError there, LoadError a RuntimeError.
void register_errors(py::module_& module) {
  (void)module;
  py::register_exception_translator([](std::exception_ptr pointer) {
    try {
      if (pointer) std::rethrow_exception(pointer);
    } catch (const tsrunner::InvalidInput& error) {
      py::set_error(py::module_::import("tsrunner.errors").attr("InvalidInput"), error.what());
    } catch (const tsrunner::LoadError& error) {
      py::set_error(py::module_::import("tsrunner.errors").attr("LoadError"), error.what());
    } catch (const tsrunner::Error& error) {
      py::set_error(py::module_::import("tsrunner.errors").attr("Error"), error.what());
    }
  });
}

}  // namespace tsrunner::python
