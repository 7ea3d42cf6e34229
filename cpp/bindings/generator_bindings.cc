#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <optional>

#include "bindings.h"
#include "tsrunner/errors.h"
#include "tsrunner/generator.h"
#include "tsrunner/runner.h"

namespace py = pybind11;

namespace tsrunner::python {
namespace {

template <typename T>
void take(const py::dict& params, const char* name, std::optional<T>& field) {
  if (params.contains(name) && !params[name].is_none()) field = params[name].cast<T>();
}

// The keyword arguments of Runner.generate, by HF generate's names.
GenerationParams params_from_dict(const py::dict& params) {
  static const char* const known[] = {"max_new_tokens",
                                      "min_new_tokens",
                                      "do_sample",
                                      "temperature",
                                      "top_k",
                                      "top_p",
                                      "min_p",
                                      "repetition_penalty",
                                      "no_repeat_ngram_size",
                                      "seed",
                                      "eos_token_id",
                                      "ignore_eos",
                                      "stop",
                                      "num_beams",
                                      "length_penalty",
                                      "early_stopping",
                                      "num_return_sequences"};
  for (const auto& [key, _] : params) {
    const std::string name = key.cast<std::string>();
    if (std::find(std::begin(known), std::end(known), name) == std::end(known)) {
      throw InvalidInput("unknown generation parameter \"" + name + "\"");
    }
  }
  GenerationParams p;
  take(params, "max_new_tokens", p.max_new_tokens);
  take(params, "min_new_tokens", p.min_new_tokens);
  take(params, "do_sample", p.do_sample);
  take(params, "temperature", p.temperature);
  take(params, "top_k", p.top_k);
  take(params, "top_p", p.top_p);
  take(params, "min_p", p.min_p);
  take(params, "repetition_penalty", p.repetition_penalty);
  take(params, "no_repeat_ngram_size", p.no_repeat_ngram_size);
  take(params, "seed", p.seed);
  if (params.contains("eos_token_id") && !params["eos_token_id"].is_none()) {
    const py::object eos = params["eos_token_id"];
    p.eos_token_ids = py::isinstance<py::int_>(eos) ? std::vector<int64_t>{eos.cast<int64_t>()}
                                                    : eos.cast<std::vector<int64_t>>();
  }
  take(params, "num_beams", p.num_beams);
  take(params, "length_penalty", p.length_penalty);
  take(params, "num_return_sequences", p.num_return_sequences);
  if (params.contains("early_stopping") && !params["early_stopping"].is_none()) {
    // HF's values: True, False or "never".
    const py::object early = params["early_stopping"];
    p.early_stopping = py::isinstance<py::bool_>(early)
                           ? std::string(early.cast<bool>() ? "true" : "false")
                           : early.cast<std::string>();
  }
  if (params.contains("ignore_eos")) p.ignore_eos = params["ignore_eos"].cast<bool>();
  if (params.contains("stop") && !params["stop"].is_none()) {
    const py::object stop = params["stop"];
    p.stop = py::isinstance<py::str>(stop) ? std::vector<std::string>{stop.cast<std::string>()}
                                           : stop.cast<std::vector<std::string>>();
  }
  return p;
}

py::dict result_to_dict(const GenerationResult& result) {
  py::dict out;
  out["text"] = py::bytes(result.text).attr("decode")("utf-8", "replace");
  out["token_ids"] = result.token_ids;
  out["finish_reason"] = result.finish_reason;
  out["prompt_tokens"] = result.prompt_tokens;
  if (!result.alternatives.empty() || result.score != 0) out["score"] = result.score;
  if (!result.alternatives.empty()) {
    py::list alternatives;
    for (const GenerationResult& other : result.alternatives) {
      alternatives.append(result_to_dict(other));
    }
    out["alternatives"] = alternatives;
  }
  return out;
}

}  // namespace

void register_generator(py::module_& module) {
  // dynamic_attr: a generator made by over() holds its runner in its __dict__, where the garbage
  // collector sees the cycle runner -> generator -> runner (as Pipeline.over does).
  py::class_<Generator>(module, "Generator",
                        "Text generation over a Runner of a generation export (C++ Generator).",
                        py::dynamic_attr())
      .def(py::init([](const Runner& runner, int64_t max_batch) {
             return Generator(runner, GeneratorOptions{max_batch});
           }),
           py::arg("runner"), py::arg("max_batch") = 8, py::keep_alive<1, 2>())
      .def_static(
          "over",
          [](py::object runner, int64_t max_batch) {
            py::object generator =
                py::cast(Generator(runner.cast<const Runner&>(), GeneratorOptions{max_batch}));
            generator.attr("_runner") = runner;  // keeps it alive, visibly to the collector
            return generator;
          },
          py::arg("runner"), py::arg("max_batch") = 8,
          "Over `runner`; a cycle through the runner is collectable.")
      .def(
          "generate",
          [](const Generator& generator, const py::list& prompts, const py::dict& params,
             const std::optional<py::function>& on_chunk) {
            const GenerationParams parsed = params_from_dict(params);
            ChunkCallback callback;
            if (on_chunk) {
              callback = [&on_chunk](const GenerationChunk& chunk) {
                const py::gil_scoped_acquire acquire;
                const py::object keep = (*on_chunk)(
                    chunk.index, chunk.token_id,
                    py::bytes(chunk.text).attr("decode")("utf-8", "replace"),
                    chunk.finished ? py::object(py::str(chunk.finish_reason)) : py::none());
                return keep.is_none() || keep.cast<bool>();
              };
            }
            const bool ids = !prompts.empty() && !py::isinstance<py::str>(prompts[0]);
            std::vector<GenerationResult> results;
            if (ids) {
              const auto token_ids = prompts.cast<std::vector<std::vector<int64_t>>>();
              const py::gil_scoped_release release;
              results = generator.generate_ids(token_ids, parsed, callback);
            } else {
              const auto texts = prompts.cast<std::vector<std::string>>();
              const py::gil_scoped_release release;
              results = generator.generate(texts, parsed, callback);
            }
            py::list out;
            for (const GenerationResult& result : results) out.append(result_to_dict(result));
            return out;
          },
          py::arg("prompts"), py::arg("params"), py::arg("on_chunk") = py::none(),
          "Continuations of `prompts` (texts or token id lists); `params` as Runner.generate's "
          "keywords; `on_chunk(index, token_id, text, finish_reason)` after every step (return "
          "False to cancel that sequence).");

  // What a generation export's saved defaults make the generator refuse (the export warns).
  module.def("generation_refusals", &generation_refusals, py::arg("manifest_json"),
             "One sentence per saved generation setting this runner refuses to generate with (HF's "
             "beam sampling, logits processors it does not implement); empty when none.");
}

}  // namespace tsrunner::python
