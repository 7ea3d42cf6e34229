#include "tsrunner/manifest.h"

#include <nlohmann/json.hpp>

#include <iomanip>
#include <sstream>

#include "generation/generation_spec.h"
#include "plain_module.h"
#include "tsrunner/errors.h"

namespace tsrunner {

namespace detail {

// Hugging Face's input names, for archives written before the manifest recorded roles.
Role role_of_unlabelled_input(const std::string& name) {
  static constexpr std::pair<std::string_view, Role> kRolesByName[] = {
      {"input_ids", Role::kTokenIds},          {"attention_mask", Role::kAttentionMask},
      {"token_type_ids", Role::kTokenTypeIds}, {"decoder_input_ids", Role::kDecoderTokenIds},
      {"pixel_values", Role::kPixelValues},
  };
  for (const auto& [hf_name, role] : kRolesByName) {
    if (name == hf_name) return role;
  }
  return Role::kNone;
}

}  // namespace detail

namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& what) {
  throw LoadError("invalid tsrunner manifest: " + what);
}

const json& require(const json& object, const char* key, const std::string& where) {
  auto it = object.find(key);
  if (it == object.end()) fail(where + " has no \"" + key + "\"");
  return *it;
}

std::string require_string(const json& object, const char* key, const std::string& where) {
  const json& value = require(object, key, where);
  if (!value.is_string()) fail(where + "." + key + " must be a string");
  return value.get<std::string>();
}

int64_t require_int(const json& object, const char* key, const std::string& where) {
  const json& value = require(object, key, where);
  if (!value.is_number_integer()) fail(where + "." + key + " must be an integer");
  return value.get<int64_t>();
}

// A string field of a closed vocabulary, parsed by `parse` (manifest_vocabulary.h, dtype.h).
template <typename Parse>
auto require_word(const json& object, const char* key, const std::string& where, Parse parse) {
  const std::string word = require_string(object, key, where);
  const auto parsed = parse(word);
  if (!parsed) fail(where + "." + key + " \"" + word + "\" is not one this tsrunner knows");
  return *parsed;
}

std::optional<int64_t> optional_int(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<int64_t>();
}

Dim parse_dim(const json& value, const std::string& where) {
  Dim dim;
  if (value.is_string()) {
    dim.symbol = value.get<std::string>();
    if (dim.symbol.empty()) fail(where + " has an empty dimension name");
  } else if (value.is_number_integer() && value.get<int64_t>() >= 0) {
    dim.size = value.get<int64_t>();
  } else {
    fail(where + " dimensions must be names or non-negative integers");
  }
  return dim;
}

std::vector<TensorSpec> parse_specs(const json& root, const char* key) {
  const json& list = require(root, key, "manifest");
  if (!list.is_array() || list.empty()) fail(std::string(key) + " must be a non-empty array");
  std::vector<TensorSpec> specs;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string where = std::string(key) + "[" + std::to_string(i) + "]";
    const json& item = list[i];
    if (!item.is_object()) fail(where + " must be an object");
    TensorSpec spec;
    spec.name = require_string(item, "name", where);
    spec.dtype = require_word(item, "dtype", where, parse_dtype);
    if (auto it = item.find("role"); it != item.end() && !it->is_null()) {
      spec.role = require_word(item, "role", where, parse_role);
    } else {
      spec.role = detail::role_of_unlabelled_input(spec.name);
    }
    const json& shape = require(item, "shape", where);
    if (!shape.is_array()) fail(where + ".shape must be an array");
    for (const json& d : shape) spec.dims.push_back(parse_dim(d, where + ".shape"));
    if (auto it = item.find("default"); it != item.end() && !it->is_null()) {
      spec.default_fill = require_word(item, "default", where, parse_fill);
    }
    if (auto it = item.find("range"); it != item.end() && !it->is_null()) {
      if (!it->is_array() || it->size() != 2 || !(*it)[0].is_number_integer() ||
          !(*it)[1].is_number_integer() || (*it)[0].get<int64_t>() >= (*it)[1].get<int64_t>()) {
        fail(where + ".range must be [low, high) with integers low < high");
      }
      spec.value_range = std::make_pair((*it)[0].get<int64_t>(), (*it)[1].get<int64_t>());
    }
    for (const TensorSpec& seen : specs) {
      if (seen.name == spec.name) fail(where + " repeats the name \"" + spec.name + "\"");
    }
    specs.push_back(std::move(spec));
  }
  return specs;
}

ShapeContract parse_contract(const json& root) {
  const json& node = require(root, "shape_contract", "manifest");
  if (!node.is_object()) fail("shape_contract must be an object");
  ShapeContract contract;
  const std::string kind = require_string(node, "kind", "shape_contract");
  if (kind != "dynamic" && kind != "fixed") {
    fail("shape_contract.kind must be \"dynamic\" or \"fixed\", not \"" + kind + "\"");
  }
  contract.kind = *parse_shape_kind(kind);
  contract.min_batch = optional_int(node, "min_batch").value_or(1);
  contract.max_batch = optional_int(node, "max_batch").value_or(0);
  contract.min_sequence = optional_int(node, "min_sequence").value_or(1);
  contract.max_sequence = require_int(node, "max_sequence", "shape_contract");
  if (contract.max_sequence < contract.min_sequence || contract.min_sequence < 1) {
    fail("shape_contract has an empty sequence range");
  }
  if (auto it = node.find("traced"); it != node.end() && it->is_object()) {
    for (const auto& item : it->items()) {
      if (!item.value().is_number_integer() || item.value().get<int64_t>() < 1) {
        fail("shape_contract.traced." + item.key() + " must be a positive integer");
      }
      contract.traced[item.key()] = item.value().get<int64_t>();
    }
  }
  if (contract.kind == ShapeKind::kFixed) contract.traced["sequence"] = contract.max_sequence;
  if (auto it = node.find("buckets"); it != node.end() && !it->is_null()) {
    if (!it->is_array() || it->empty()) fail("shape_contract.buckets must be a non-empty array");
    for (const json& length : *it) {
      if (!length.is_number_integer() || length.get<int64_t>() < 1 ||
          (!contract.buckets.empty() && length.get<int64_t>() <= contract.buckets.back())) {
        fail("shape_contract.buckets must be ascending positive lengths");
      }
      contract.buckets.push_back(length.get<int64_t>());
    }
    if (contract.kind != ShapeKind::kFixed || contract.buckets.back() != contract.max_sequence) {
      fail("shape_contract.buckets need kind \"fixed\" and end at max_sequence");
    }
  }
  return contract;
}

// Optional fields read only for display: a value of another type shows as the fallback rather
// than throwing (json::value() throws on a type mismatch).
std::string string_or(const json& object, const char* key, const std::string& fallback) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : fallback;
}

bool bool_or(const json& object, const char* key, bool fallback) {
  auto it = object.find(key);
  return it != object.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

double number_or(const json& object, const char* key, double fallback) {
  auto it = object.find(key);
  return it != object.end() && it->is_number() ? it->get<double>() : fallback;
}

// "Dense(384->256, Tanh)": one module of a sentence_embedding record, for describe().
std::string module_summary(const json& module) {
  const std::string type = string_or(module, "type", "?");
  std::string detail;
  if (type == "Pooling" && module.contains("modes") && module["modes"].is_array()) {
    for (const json& mode : module["modes"]) {
      if (!detail.empty()) detail += "+";
      detail += mode.is_string() ? mode.get<std::string>() : "?";
    }
  } else if (type == "Dense") {
    detail = std::to_string(static_cast<int64_t>(number_or(module, "in_features", 0))) + "->" +
             std::to_string(static_cast<int64_t>(number_or(module, "out_features", 0))) + ", " +
             string_or(module, "activation", "?");
  } else if (type == "Transformer") {
    return type;
  } else if (type == "LayerNorm") {
    detail = std::to_string(static_cast<int64_t>(number_or(module, "dimension", 0)));
  }
  return detail.empty() ? type : type + "(" + detail + ")";
}

SentenceEmbedding parse_sentence_embedding(const json& node,
                                           const std::vector<TensorSpec>& outputs) {
  const std::string where = "sentence_embedding";
  if (!node.is_object()) fail(where + " must be an object or null");
  SentenceEmbedding embedding;
  embedding.output = require_string(node, "output", where);
  bool found = false;
  for (const TensorSpec& output : outputs) found = found || output.name == embedding.output;
  if (!found) fail(where + ".output \"" + embedding.output + "\" is not one of the outputs");
  embedding.dimension = require_int(node, "dimension", where);
  if (embedding.dimension < 1) fail(where + ".dimension must be positive");
  embedding.max_seq_length = optional_int(node, "max_seq_length");
  if (auto it = node.find("prompts"); it != node.end() && !it->is_null()) {
    if (!it->is_object()) fail(where + ".prompts must map names to strings");
    for (const auto& item : it->items()) {
      if (!item.value().is_string()) fail(where + ".prompts must map names to strings");
      embedding.prompts[item.key()] = item.value().get<std::string>();
    }
  }
  if (auto it = node.find("default_prompt_name"); it != node.end() && !it->is_null()) {
    if (!it->is_string() || !embedding.prompts.count(it->get<std::string>())) {
      fail(where + ".default_prompt_name must name one of the prompts");
    }
    embedding.default_prompt_name = it->get<std::string>();
  }
  const json& modules = require(node, "modules", where);
  if (!modules.is_array()) fail(where + ".modules must be an array");
  for (const json& module : modules) {
    if (!module.is_object()) fail(where + ".modules must hold objects");
    embedding.modules.push_back(module_summary(module));
  }
  return embedding;
}

const TensorSpec* find_named(const std::vector<TensorSpec>& specs, const std::string& name) {
  for (const TensorSpec& spec : specs) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

constexpr std::pair<Task, std::string_view> kTaskNames[] = {
    {Task::kFeatureExtraction, "feature-extraction"},
    {Task::kFillMask, "fill-mask"},
    {Task::kTextClassification, "text-classification"},
    {Task::kTokenClassification, "token-classification"},
    {Task::kQuestionAnswering, "question-answering"},
    {Task::kMultipleChoice, "multiple-choice"},
    {Task::kCausalLm, "causal-lm"},
    {Task::kText2Text, "text2text"},
    {Task::kImageClassification, "image-classification"},
};

std::string join_dims(const std::vector<Dim>& dims) {
  std::string text = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) text += ", ";
    text += dims[i].to_string();
  }
  return text + "]";
}

}  // namespace

Task parse_task(std::string_view name) {
  for (const auto& [task, task_text] : kTaskNames) {
    if (name == task_text) return task;
  }
  return Task::kOther;
}

std::string_view task_name(Task task) {
  for (const auto& [known, task_text] : kTaskNames) {
    if (known == task) return task_text;
  }
  return "other";
}

std::string Dim::to_string() const { return is_symbolic() ? symbol : std::to_string(size); }

const std::string& SentenceEmbedding::prompt(const std::string& name) const {
  static const std::string kNoPrompt;
  const std::string& chosen = name.empty() ? default_prompt_name : name;
  if (chosen.empty()) return kNoPrompt;
  auto it = prompts.find(chosen);
  if (it == prompts.end()) {
    std::string known;
    for (const auto& item : prompts) known += (known.empty() ? "" : ", ") + item.first;
    throw InvalidInput("unknown prompt name \"" + chosen + "\"; this model has " +
                       (known.empty() ? "no prompts" : "the prompts " + known));
  }
  return it->second;
}

Manifest Manifest::parse(const std::string& json_text) {
  json root = json::parse(json_text, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) fail("not valid JSON");
  if (!root.is_object()) fail("the top level must be an object");
  if (root.value("plain_module", false) == true) return detail::parse_plain_manifest(json_text);

  Manifest manifest;
  manifest.schema_version = static_cast<int>(require_int(root, "schema_version", "manifest"));
  if (manifest.schema_version > kManifestSchemaVersion) {
    throw LoadError("this archive uses manifest schema " + std::to_string(manifest.schema_version) +
                    " but this tsrunner reads up to " + std::to_string(kManifestSchemaVersion) +
                    ": upgrade tsrunner");
  }
  if (manifest.schema_version < 1) fail("schema_version must be at least 1");
  manifest.task = require_string(root, "task", "manifest");
  // An unknown task is not an error: run() needs only the inputs and outputs, and a newer
  // exporter's task must not make an archive of schema 1 unreadable.
  manifest.task_kind = parse_task(manifest.task);
  const json& model = require(root, "model", "manifest");
  if (!model.is_object()) fail("model must be an object");
  manifest.model_type = require_string(model, "type", "model");
  manifest.model_class = require_string(model, "class", "model");
  if (auto it = root.find("backend"); it != root.end() && !it->is_null()) {
    manifest.backend = require_word(root, "backend", "manifest", parse_backend);
  }
  if (auto it = root.find("aoti"); it != root.end() && !it->is_null()) {
    if (!it->is_object()) fail("aoti must be an object");
    AotiRequirements aoti;
    aoti.model_name = require_string(*it, "model_name", "aoti");
    aoti.isa = require_string(*it, "isa", "aoti");
    aoti.torch_version = require_string(*it, "torch", "aoti");
    for (const char* key : {"cpu_isa", "cpu_flags"}) {
      const json& words = require(*it, key, "aoti");
      if (!words.is_array()) fail(std::string("aoti.") + key + " must be a list of strings");
      for (const json& word : words) {
        if (!word.is_string()) fail(std::string("aoti.") + key + " must be a list of strings");
        (std::string(key) == "cpu_isa" ? aoti.cpu_isa : aoti.cpu_flags)
            .push_back(word.get<std::string>());
      }
    }
    manifest.aoti = std::move(aoti);
  }
  manifest.inputs = parse_specs(root, "inputs");
  manifest.outputs = parse_specs(root, "outputs");
  manifest.shape_contract = parse_contract(root);
  manifest.max_length = require_int(root, "max_length", "manifest");
  manifest.vocab_size = optional_int(root, "vocab_size");
  manifest.type_vocab_size = optional_int(root, "type_vocab_size");
  manifest.pad_token_id = optional_int(root, "pad_token_id");
  if (auto it = root.find("pooling"); it != root.end() && !it->is_null()) {
    if (!it->is_object()) fail("pooling must be an object or null");
    Pooling pooling;
    pooling.mode = require_word(*it, "mode", "pooling", parse_pooling_mode);
    const json& normalize = require(*it, "normalize", "pooling");
    if (!normalize.is_boolean()) fail("pooling.normalize must be a boolean");
    pooling.normalize = normalize.get<bool>();
    manifest.pooling = pooling;
  }
  if (auto it = root.find("sentence_embedding"); it != root.end() && !it->is_null()) {
    manifest.sentence_embedding = parse_sentence_embedding(*it, manifest.outputs);
  }
  if (auto it = root.find("labels"); it != root.end() && !it->is_null()) {
    if (!it->is_array()) fail("labels must be an array of strings");
    for (const json& label : *it) {
      if (!label.is_string()) fail("labels must be an array of strings");
      manifest.labels.push_back(label.get<std::string>());
    }
  }
  if (auto it = root.find("score_function"); it != root.end() && !it->is_null()) {
    manifest.score_function =
        require_word(root, "score_function", "manifest", parse_score_function);
  }
  manifest.mask_token_id = optional_int(root, "mask_token_id");
  manifest.decoder_start_token_id = optional_int(root, "decoder_start_token_id");
  if (auto it = root.find("tokenizer"); it != root.end() && it->is_string()) {
    manifest.has_tokenizer = true;
  }
  manifest.raw_json = json_text;
  return manifest;
}

const TensorSpec* Manifest::find_input(const std::string& name) const {
  return find_named(inputs, name);
}

const TensorSpec* Manifest::find_input_by_role(Role role) const {
  if (role == Role::kNone) return nullptr;
  for (const TensorSpec& spec : inputs) {
    if (spec.role == role) return &spec;
  }
  return nullptr;
}

const TensorSpec* Manifest::find_output(const std::string& name) const {
  return find_named(outputs, name);
}

std::string Manifest::describe() const {
  if (plain_module) return detail::describe_plain_module(*this);
  const json root = json::parse(raw_json, nullptr, false);
  std::ostringstream out;
  auto row = [&out](const std::string& label) -> std::ostream& {
    return out << "  " << std::left << std::setw(12) << label;
  };
  out << "tsrunner archive (manifest schema " << schema_version << ")\n";
  row("task") << task << "\n";
  row("model") << model_type << " (" << model_class << ")\n";
  if (backend != Backend::kJit) row("backend") << backend_name(backend) << "\n";
  if (aoti) {
    std::string isa;
    for (const std::string& word : aoti->cpu_isa) isa += " " + word;
    row("compiled") << "AOTInductor, isa " << aoti->isa << " (" << isa.substr(isa.empty() ? 0 : 1)
                    << "), LibTorch " << aoti->torch_version << "\n";
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    row(i == 0 ? "inputs" : "") << inputs[i].name << " " << dtype_name(inputs[i].dtype) << " "
                                << join_dims(inputs[i].dims);
    if (inputs[i].default_fill != Fill::kRequired) {
      out << "  (default: " << fill_name(inputs[i].default_fill) << ")";
    }
    out << "\n";
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    row(i == 0 ? "outputs" : "") << outputs[i].name << " " << dtype_name(outputs[i].dtype) << " "
                                 << join_dims(outputs[i].dims) << "\n";
  }
  row("shapes") << shape_kind_name(shape_contract.kind) << ": sequence "
                << shape_contract.min_sequence << ".." << shape_contract.max_sequence;
  if (!shape_contract.buckets.empty()) {
    out << ", buckets";
    for (size_t i = 0; i < shape_contract.buckets.size(); ++i) {
      out << (i ? ", " : " ") << shape_contract.buckets[i];
    }
  }
  if (shape_contract.max_batch > 0) {
    out << ", batch " << shape_contract.min_batch << ".." << shape_contract.max_batch;
  }
  out << "\n";
  row("max length") << max_length;
  if (sentence_embedding && sentence_embedding->max_seq_length &&
      *sentence_embedding->max_seq_length != max_length) {
    out << " (sentence-transformers truncates at " << *sentence_embedding->max_seq_length << ")";
  }
  out << "\n";
  if (sentence_embedding) {
    std::string pipeline;
    for (const std::string& module : sentence_embedding->modules) {
      pipeline += (pipeline.empty() ? "" : " -> ") + module;
    }
    row("embedding") << sentence_embedding->output << " [" << sentence_embedding->dimension
                     << "]: " << pipeline << "\n";
    for (const auto& [name, text] : sentence_embedding->prompts) {
      row(name == sentence_embedding->prompts.begin()->first ? "prompts" : "")
          << name << ": " << json(text).dump()
          << (name == sentence_embedding->default_prompt_name ? " (default)" : "") << "\n";
    }
    const json& record = root["sentence_embedding"];
    if (record.contains("reference") && record["reference"].is_object()) {
      const json& reference = record["reference"];
      std::ostringstream cosine;
      cosine << std::setprecision(6) << number_or(reference, "min_cosine", 0.0);
      row("checked") << "against SentenceTransformer.encode ("
                     << string_or(reference, "library", "?") << "): min cosine " << cosine.str()
                     << " on " << static_cast<int64_t>(number_or(reference, "texts", 0))
                     << " texts\n";
    } else {
      row("checked") << "not against sentence-transformers (it was not installed at export)\n";
    }
  }
  if (pooling) {
    row("pooling") << pooling_mode_name(pooling->mode) << (pooling->normalize ? ", normalized" : "")
                   << "\n";
  }
  if (score_function) row("scores") << score_function_name(*score_function) << "\n";
  if (root.contains("quantization") && root["quantization"].is_object()) {
    const json& quantization = root["quantization"];
    row("quantized") << string_or(quantization, "mode", "?") << " ("
                     << string_or(quantization, "method", "?") << ", "
                     << string_or(quantization, "layers", "?") << ")\n";
  }
  if (root.contains("generation")) out << detail::describe_generation(raw_json);
  row("tokenizer") << (has_tokenizer ? "embedded (" + std::string(kTokenizerRecord) + ")"
                                     : "none: pass token ids")
                   << "\n";
  if (root.contains("validation") && root["validation"].is_object()) {
    const json& validation = root["validation"];
    double worst = 0.0;
    size_t shapes = 0;
    if (validation.contains("checks") && validation["checks"].is_array()) {
      for (const json& check : validation["checks"]) {
        ++shapes;
        if (!check.contains("max_abs_diff") || !check["max_abs_diff"].is_object()) continue;
        for (const auto& item : check["max_abs_diff"].items()) {
          if (item.value().is_number()) worst = std::max(worst, item.value().get<double>());
        }
      }
    }
    std::ostringstream worst_text;
    worst_text << std::setprecision(3) << worst;
    row("validation") << (bool_or(validation, "passed", false) ? "passed" : "FAILED") << " at "
                      << shapes << " shapes, atol " << number_or(validation, "atol", 0.0)
                      << ", worst max|diff| " << worst_text.str() << "\n";
  }
  if (root.contains("versions") && root["versions"].is_object()) {
    std::string versions;
    for (const auto& item : root["versions"].items()) {
      if (!versions.empty()) versions += ", ";
      versions +=
          item.key() + " " +
          (item.value().is_string() ? item.value().get<std::string>() : item.value().dump());
    }
    row("versions") << versions << "\n";
  }
  return out.str();
}

}  // namespace tsrunner
