#include "plain_module.h"

#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>
#include <vector>

#include "archive.h"
#include "tsrunner/errors.h"

namespace tsrunner::detail {
namespace {

using nlohmann::ordered_json;

std::string trim(std::string_view text) {
  const size_t begin = text.find_first_not_of(" \n\t");
  if (begin == std::string_view::npos) return "";
  const size_t end = text.find_last_not_of(" \n\t");
  return std::string(text.substr(begin, end - begin + 1));
}

// `text` split at the commas outside brackets.
std::vector<std::string> split_top_level(std::string_view text) {
  std::vector<std::string> parts;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '[' || text[i] == '(') ++depth;
    if (text[i] == ']' || text[i] == ')') --depth;
    if (text[i] == ',' && depth == 0) {
      parts.push_back(trim(text.substr(start, i - start)));
      start = i + 1;
    }
  }
  if (std::string last = trim(text.substr(start)); !last.empty()) parts.push_back(last);
  return parts;
}

// The root module's class as the archive's data.pkl names it first (pickle protocol 2: PROTO,
// then GLOBAL "module\nname\n"), read as bytes: nothing is unpickled.
std::pair<std::string, std::string> root_class(const Archive& archive) {
  auto [data, size] = archive.reader().getRecord("data.pkl");
  const std::string_view pickle(static_cast<const char*>(data.get()), size);
  if (pickle.size() < 4 || pickle[0] != '\x80' || pickle[2] != 'c') return {};
  const size_t module_end = pickle.find('\n', 3);
  const size_t name_end = pickle.find('\n', module_end + 1);
  if (module_end == std::string_view::npos || name_end == std::string_view::npos) return {};
  return {std::string(pickle.substr(3, module_end - 3)),
          std::string(pickle.substr(module_end + 1, name_end - module_end - 1))};
}

}  // namespace

Manifest read_plain_module(const Archive& archive) {
  const std::string& path = archive.path();
  const std::string unreadable = path + " is TorchScript without a tsrunner manifest, and ";
  try {
    if (!archive.reader().hasRecord("data.pkl")) {
      throw LoadError(unreadable + "it holds no TorchScript module (no data.pkl)");
    }
    const auto [module, name] = root_class(archive);
    if (module.empty()) throw LoadError(unreadable + "its root module's class cannot be read");
    std::string file = "code/" + module + ".py";
    for (size_t i = 5; i < file.size() - 3; ++i) file[i] = file[i] == '.' ? '/' : file[i];
    if (!archive.reader().hasRecord(file)) {
      throw LoadError(unreadable + "it has no code for " + module + "." + name);
    }
    auto [data, size] = archive.reader().getRecord(file);
    const std::string code(static_cast<const char*>(data.get()), size);
    const size_t class_at = code.find("class " + name + "(");
    const size_t forward_at =
        class_at == std::string::npos ? class_at : code.find("def forward(", class_at);
    const size_t next_class = code.find("\nclass ", class_at + 1);
    if (forward_at == std::string::npos || forward_at > next_class) {
      throw LoadError(unreadable + module + "." + name + " has no forward method");
    }
    // forward(self: ..., a: Tensor, b: Tensor) -> Tuple[Tensor, Tensor]:
    const size_t open = forward_at + std::string_view("def forward").size();
    size_t close = open;
    for (int depth = 0; close < code.size(); ++close) {
      depth += code[close] == '(' ? 1 : code[close] == ')' ? -1 : 0;
      if (depth == 0) break;
    }
    const size_t arrow = code.find("->", close);
    const size_t line_end = code.find('\n', close);
    std::string returns =
        arrow < line_end ? trim(code.substr(arrow + 2, line_end - arrow - 2)) : "";
    if (!returns.empty() && returns.back() == ':')
      returns = trim(returns.substr(0, returns.size() - 1));
    std::vector<std::string> arguments = split_top_level(code.substr(open + 1, close - open - 1));
    if (!arguments.empty()) arguments.erase(arguments.begin());  // self

    ordered_json root;
    root["plain_module"] = true;
    root["model"] = {{"class", name}, {"torchscript_class", module + "." + name}};
    std::string signature;
    ordered_json inputs = ordered_json::array();
    for (const std::string& argument : arguments) {
      const size_t colon = argument.find(':');
      const std::string arg_name = trim(argument.substr(0, colon));
      const std::string type = colon == std::string::npos ? "" : trim(argument.substr(colon + 1));
      if (type != "Tensor") {
        throw LoadError(unreadable + "its forward takes " + argument +
                        "; tsrunner passes tensors only (every argument a Tensor)");
      }
      inputs.push_back({{"name", arg_name}});
      signature += (signature.empty() ? "" : ", ") + arg_name + ": " + type;
    }
    size_t output_count = 1;
    if (returns.rfind("Tuple[", 0) == 0 && returns.back() == ']') {
      const std::vector<std::string> elements =
          split_top_level(std::string_view(returns).substr(6, returns.size() - 7));
      for (const std::string& element : elements) {
        if (element != "Tensor") output_count = 0;
      }
      if (output_count != 0) output_count = elements.size();
    } else if (returns != "Tensor") {
      output_count = 0;
    }
    if (output_count == 0) {
      throw LoadError(unreadable + "its forward returns " + (returns.empty() ? "?" : returns) +
                      "; tsrunner runs modules returning a Tensor or a Tuple of Tensors (trace "
                      "with return_dict=False)");
    }
    ordered_json outputs = ordered_json::array();
    for (size_t i = 0; i < output_count; ++i) {
      outputs.push_back({{"name", "output_" + std::to_string(i)}});
    }
    root["forward"] = "(" + signature + ") -> " + returns;
    root["inputs"] = inputs;
    root["outputs"] = outputs;
    return parse_plain_manifest(root.dump());
  } catch (const c10::Error& error) {
    throw LoadError(path + " is corrupted: " + first_sentence(error.msg()));
  }
}

Manifest parse_plain_manifest(const std::string& json_text) {
  const auto root = nlohmann::json::parse(json_text, nullptr, false);
  if (!root.is_object() || !root.value("plain_module", false)) {
    throw LoadError("not the description of a plain TorchScript module");
  }
  Manifest manifest;
  manifest.plain_module = true;
  manifest.model_type = "";
  if (root.contains("model") && root["model"].is_object()) {
    manifest.model_class = root["model"].value("class", "");
  }
  manifest.shape_contract.kind = ShapeKind::kUnknown;
  for (const char* key : {"inputs", "outputs"}) {
    if (!root.contains(key) || !root[key].is_array()) {
      throw LoadError(std::string("a plain module's description needs \"") + key + "\"");
    }
    for (const auto& item : root[key]) {
      TensorSpec spec;
      spec.name = item.is_object() ? item.value("name", "") : "";
      if (spec.name.empty())
        throw LoadError(std::string("every plain-module ") + key + " needs a name");
      spec.role = role_of_unlabelled_input(spec.name);
      (std::string(key) == "inputs" ? manifest.inputs : manifest.outputs).push_back(spec);
    }
  }
  manifest.raw_json = json_text;
  return manifest;
}

std::string describe_plain_module(const Manifest& manifest) {
  const auto root = nlohmann::json::parse(manifest.raw_json, nullptr, false);
  std::ostringstream out;
  auto row = [&out](const std::string& label) -> std::ostream& {
    out << "  " << label;
    for (size_t i = label.size(); i < 12; ++i) out << ' ';
    return out;
  };
  out << "plain TorchScript module (no tsrunner manifest: dtypes, shapes and digest unknown)\n";
  const std::string torchscript_class =
      root.contains("model") ? root["model"].value("torchscript_class", "") : "";
  row("class") << manifest.model_class << " (" << torchscript_class << ")\n";
  row("forward") << root.value("forward", "") << "\n";
  std::string names;
  for (const TensorSpec& spec : manifest.inputs) names += (names.empty() ? "" : ", ") + spec.name;
  row("inputs") << names << "  (by name, in forward's order)\n";
  names.clear();
  for (const TensorSpec& spec : manifest.outputs) names += (names.empty() ? "" : ", ") + spec.name;
  row("outputs") << names << "\n";
  return out.str();
}

}  // namespace tsrunner::detail
