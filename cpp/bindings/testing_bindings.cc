#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>

#include "bindings.h"
#include "tsrunner/testing.h"
#include "tsrunner/tokenizer.h"

namespace py = pybind11;

namespace tsrunner::python {

// tsrunner/testing.h as the submodule _core._testing: for tsrunner's own tests, apart from the
// product API.
void register_testing(py::module_& module) {
  py::module_ testing = module.def_submodule(
      "_testing", "Test hooks and internals for tsrunner's own tests (tsrunner/testing.h).");
  testing.def(
      "set_after_verify_hook",
      [](std::optional<py::function> hook) {
        if (!hook) return tsrunner::testing::set_after_verify_hook({});
        // Held by a shared_ptr so that copies of the std::function share one Python reference;
        // it is released here, with the GIL, when the next call replaces it.
        auto callable = std::make_shared<py::function>(std::move(*hook));
        tsrunner::testing::set_after_verify_hook([callable](const std::string& path) {
          py::gil_scoped_acquire gil;
          (*callable)(path);
        });
      },
      py::arg("hook"),
      "Calls hook(path) after a Runner verified the file, before it loads the TorchScript; None "
      "removes it.");
  testing.def(
      "stream_pieces",
      [](const Tokenizer& tokenizer, const std::vector<int64_t>& ids,
         const std::vector<std::string>& stop) {
        std::vector<py::bytes> pieces;
        for (const std::string& piece : tsrunner::testing::stream_pieces(tokenizer, ids, stop)) {
          pieces.emplace_back(piece);
        }
        return pieces;
      },
      py::arg("tokenizer"), py::arg("ids"), py::arg("stop") = std::vector<std::string>{},
      "The text each token of `ids` releases from the generator's detokenizer, then the end's.");
  testing.def("warp_scores", &tsrunner::testing::warp_scores, py::arg("scores"),
              py::arg("temperature") = 1.0, py::arg("top_k") = 0, py::arg("top_p") = 1.0,
              py::arg("min_p") = 0.0, "The generator's sampling warpers on one set of scores.");
}

}  // namespace tsrunner::python
