#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "bindings.h"
#include "tsrunner/tokenizer.h"

namespace py = pybind11;

namespace tsrunner::python {
namespace {

// C++ offsets are bytes into UTF-8; Python (like HF tokenizers) counts characters.
std::vector<size_t> char_index_of_bytes(const std::string& text) {
  std::vector<size_t> index(text.size() + 1, 0);
  size_t chars = 0;
  for (size_t byte = 0; byte < text.size(); ++byte) {
    index[byte] = chars;  // offsets only ever point at the first byte of a character
    if ((static_cast<unsigned char>(text[byte]) & 0xC0) != 0x80) ++chars;
  }
  index[text.size()] = chars;
  return index;
}

Encoding with_char_offsets(Encoding encoding, const std::string& text, const std::string* pair) {
  const std::vector<size_t> first = char_index_of_bytes(text);
  const std::vector<size_t> second = pair ? char_index_of_bytes(*pair) : std::vector<size_t>{};
  for (size_t i = 0; i < encoding.size(); ++i) {
    const int sequence = encoding.sequence_ids[i];
    if (sequence < 0) continue;
    const std::vector<size_t>& index = sequence == 0 ? first : second;
    auto& [begin, end] = encoding.offsets[i];
    begin = index[begin];
    end = index[end];
  }
  return encoding;
}

}  // namespace

void register_tokenizer(py::module_& module) {
  py::class_<Encoding>(module, "Encoding",
                       "One tokenized text (or pair). Offsets are character offsets, as in HF "
                       "tokenizers; (0, 0) for special and padding tokens.")
      .def_readonly("ids", &Encoding::ids)
      .def_readonly("type_ids", &Encoding::type_ids)
      .def_readonly("attention_mask", &Encoding::attention_mask)
      .def_readonly("tokens", &Encoding::tokens)
      .def_readonly("offsets", &Encoding::offsets)
      .def_readonly("sequence_ids", &Encoding::sequence_ids)
      .def("__len__", &Encoding::size)
      .def("__repr__", [](const Encoding& encoding) {
        return "Encoding(num_tokens=" + std::to_string(encoding.size()) + ")";
      });

  py::class_<Tokenizer>(module, "Tokenizer",
                        "The native (C++) tokenizer: the same ids as HF tokenizers for a WordPiece "
                        "tokenizer.json. Thread-safe.")
      .def_static(
          "from_file",
          [](const std::filesystem::path& path) {
            py::gil_scoped_release release;
            return Tokenizer::from_file(path.string());
          },
          py::arg("path"),
          "Loads the tokenizer of a tsrunner export (.pt, truncating to its max_length) or a "
          "tokenizer.json.")
      .def_static(
          "from_json",
          [](const std::string& json_text, std::optional<size_t> max_length) {
            return Tokenizer::from_json(json_text, max_length);
          },
          py::arg("json"), py::arg("max_length") = py::none(),
          "Loads a tokenizer.json given as a string; max_length overrides its truncation.")
      .def_static(
          "from_str",
          [](const std::string& json_text, std::optional<size_t> max_length) {
            // Renamed to match C++ (Tokenizer::from_json); kept working (docs/stable-api.md).
            if (PyErr_WarnEx(PyExc_DeprecationWarning,
                             "Tokenizer.from_str is deprecated; use Tokenizer.from_json", 1) != 0) {
              throw py::error_already_set();
            }
            return Tokenizer::from_json(json_text, max_length);
          },
          py::arg("json"), py::arg("max_length") = py::none(), "Deprecated name of from_json.")
      .def(
          "encode",
          [](const Tokenizer& tokenizer, const std::string& text,
             const std::optional<std::string>& pair) {
            Encoding encoding;
            {
              py::gil_scoped_release release;
              encoding = pair ? tokenizer.encode(text, *pair) : tokenizer.encode(text);
            }
            return with_char_offsets(std::move(encoding), text, pair ? &*pair : nullptr);
          },
          py::arg("text"), py::arg("pair") = py::none(),
          "Tokenizes a text (and its pair) with special tokens, truncated, not padded.")
      .def(
          "encode_windows",
          [](const Tokenizer& tokenizer, const std::string& text, const std::string& pair,
             size_t stride, std::optional<size_t> max_length) {
            std::vector<Encoding> encodings;
            {
              py::gil_scoped_release release;
              encodings = tokenizer.encode_windows(text, pair, stride, max_length);
            }
            for (Encoding& encoding : encodings) {
              encoding = with_char_offsets(std::move(encoding), text, &pair);
            }
            return encodings;
          },
          py::arg("text"), py::arg("pair"), py::arg("stride"), py::arg("max_length") = py::none(),
          "Tokenizes a text and a pair too long for max_length as overlapping windows of the "
          "pair, each with the whole text (HF's truncation='only_second' with "
          "return_overflowing_tokens and stride); max_length overrides the window length.")
      .def(
          "encode_batch",
          [](const Tokenizer& tokenizer, const std::vector<std::string>& texts,
             const std::optional<std::vector<std::string>>& pairs, size_t pad_to) {
            std::vector<Encoding> encodings;
            {
              py::gil_scoped_release release;
              encodings =
                  tokenizer.encode_batch(texts, pairs.value_or(std::vector<std::string>{}), pad_to);
            }
            for (size_t i = 0; i < encodings.size(); ++i) {
              encodings[i] = with_char_offsets(std::move(encodings[i]), texts[i],
                                               pairs ? &(*pairs)[i] : nullptr);
            }
            return encodings;
          },
          py::arg("texts"), py::arg("pairs") = py::none(), py::arg("pad_to") = 0,
          "Tokenizes many texts (and pairs), padded to the longest (or to pad_to).")
      .def_property_readonly("max_length", &Tokenizer::max_length)
      .def_property_readonly("pad_id", &Tokenizer::pad_id)
      .def_property_readonly("vocab_size", &Tokenizer::vocab_size)
      .def("token_to_id", &Tokenizer::token_to_id, py::arg("token"))
      .def("id_to_token", &Tokenizer::id_to_token, py::arg("id"));
}

}  // namespace tsrunner::python
