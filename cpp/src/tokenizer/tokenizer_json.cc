#include "tokenizer/tokenizer_json.h"

#include <nlohmann/json.hpp>

#include "tsrunner/errors.h"

namespace tsrunner::text {
namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& what) { throw LoadError("tokenizer.json: " + what); }

std::string type_of(const json& component) {
  if (!component.is_object() || !component.contains("type") || !component["type"].is_string()) {
    fail("a component has no \"type\"");
  }
  return component["type"].get<std::string>();
}

template <typename T>
T value_or(const json& object, const char* key, T fallback) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    fail(std::string("\"") + key + "\" has the wrong type");
  }
}

BertNormalizer parse_normalizer(const json& node) {
  const std::string type = type_of(node);
  if (type != "BertNormalizer") {
    fail("normalizer " + type + " is not supported (native tokenization supports BertNormalizer)");
  }
  BertNormalizer normalizer;
  normalizer.clean_text = value_or(node, "clean_text", true);
  normalizer.handle_chinese_chars = value_or(node, "handle_chinese_chars", true);
  normalizer.lowercase = value_or(node, "lowercase", true);
  // HF: strip_accents null means "strip when lowercasing".
  normalizer.strip_accents = value_or(node, "strip_accents", normalizer.lowercase);
  return normalizer;
}

WordPiece parse_model(const json& node) {
  const std::string type = type_of(node);
  if (type != "WordPiece") {
    fail("model " + type + ": native tokenization supports WordPiece; pass token ids");
  }
  WordPiece model;
  const json& vocab = node.value("vocab", json());
  if (!vocab.is_object() || vocab.empty()) fail("model.vocab must be a non-empty object");
  model.vocab.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer()) fail("model.vocab[\"" + token + "\"] is not an integer");
    model.vocab.emplace(token, id.get<int64_t>());
  }
  model.unk_token = value_or<std::string>(node, "unk_token", "[UNK]");
  model.continuing_subword_prefix = value_or<std::string>(node, "continuing_subword_prefix", "##");
  model.max_input_chars_per_word = value_or<size_t>(node, "max_input_chars_per_word", 100);
  auto unk = model.vocab.find(model.unk_token);
  if (unk == model.vocab.end())
    fail("the unknown token " + model.unk_token + " is not in the vocabulary");
  model.unk_id = unk->second;
  return model;
}

TemplatePiece special_piece(const std::string& name, int64_t id, int64_t type_id) {
  TemplatePiece piece;
  piece.ids = {id};
  piece.tokens = {name};
  piece.type_id = type_id;
  return piece;
}

TemplatePiece sequence_piece(int sequence, int64_t type_id) {
  TemplatePiece piece;
  piece.is_sequence = true;
  piece.sequence = sequence;
  piece.type_id = type_id;
  return piece;
}

std::vector<TemplatePiece> parse_template(const json& items, const json& special_tokens,
                                          const std::string& where) {
  if (!items.is_array()) fail(where + " must be an array");
  std::vector<TemplatePiece> pieces;
  for (const json& item : items) {
    if (item.contains("Sequence")) {
      const json& sequence = item["Sequence"];
      const std::string id = value_or<std::string>(sequence, "id", "A");
      if (id != "A" && id != "B") fail(where + ": unknown sequence \"" + id + "\"");
      pieces.push_back(
          sequence_piece(id == "A" ? 0 : 1, value_or<int64_t>(sequence, "type_id", 0)));
    } else if (item.contains("SpecialToken")) {
      const json& special = item["SpecialToken"];
      const std::string id = value_or<std::string>(special, "id", "");
      auto it = special_tokens.find(id);
      if (it == special_tokens.end()) fail(where + ": special token \"" + id + "\" is not defined");
      TemplatePiece piece;
      piece.ids = value_or<std::vector<int64_t>>(*it, "ids", {});
      piece.tokens = value_or<std::vector<std::string>>(*it, "tokens", {});
      if (piece.ids.size() != piece.tokens.size())
        fail(where + ": special token \"" + id + "\" is malformed");
      piece.type_id = value_or<int64_t>(special, "type_id", 0);
      pieces.push_back(std::move(piece));
    } else {
      fail(where + " has an item that is neither Sequence nor SpecialToken");
    }
  }
  return pieces;
}

PostProcessor parse_post_processor(const json& node) {
  PostProcessor processor;
  if (node.is_null()) {
    processor.single = {sequence_piece(0, 0)};
    processor.pair = {sequence_piece(0, 0), sequence_piece(1, 1)};
    return processor;
  }
  const std::string type = type_of(node);
  if (type == "TemplateProcessing") {
    const json& special_tokens = node.value("special_tokens", json::object());
    processor.single =
        parse_template(node.value("single", json()), special_tokens, "post_processor.single");
    processor.pair =
        parse_template(node.value("pair", json()), special_tokens, "post_processor.pair");
    return processor;
  }
  if (type == "BertProcessing") {
    auto token = [&](const char* key) {
      const json& value = node.value(key, json());
      if (!value.is_array() || value.size() != 2 || !value[0].is_string() ||
          !value[1].is_number_integer()) {
        fail(std::string("post_processor.") + key + " must be [token, id]");
      }
      return std::make_pair(value[0].get<std::string>(), value[1].get<int64_t>());
    };
    const auto [cls, cls_id] = token("cls");
    const auto [sep, sep_id] = token("sep");
    processor.single = {special_piece(cls, cls_id, 0), sequence_piece(0, 0),
                        special_piece(sep, sep_id, 0)};
    processor.pair = {special_piece(cls, cls_id, 0), sequence_piece(0, 0),
                      special_piece(sep, sep_id, 0), sequence_piece(1, 1),
                      special_piece(sep, sep_id, 1)};
    return processor;
  }
  fail("post_processor " + type +
       " is not supported (native tokenization supports TemplateProcessing and BertProcessing)");
}

Truncation parse_truncation(const json& node) {
  Truncation truncation;
  truncation.max_length = value_or<size_t>(node, "max_length", 0);
  const std::string strategy = value_or<std::string>(node, "strategy", "LongestFirst");
  if (strategy == "LongestFirst") {
    truncation.strategy = Truncation::Strategy::kLongestFirst;
  } else if (strategy == "OnlyFirst") {
    truncation.strategy = Truncation::Strategy::kOnlyFirst;
  } else if (strategy == "OnlySecond") {
    truncation.strategy = Truncation::Strategy::kOnlySecond;
  } else {
    fail("unknown truncation strategy \"" + strategy + "\"");
  }
  truncation.from_left = value_or<std::string>(node, "direction", "Right") == "Left";
  return truncation;
}

}  // namespace

TokenizerSpec parse_tokenizer_json(const std::string& json_text) {
  const json root = json::parse(json_text, nullptr, false);
  if (root.is_discarded() || !root.is_object()) fail("not a JSON object");
  if (!root.contains("model")) fail("no \"model\"");

  TokenizerSpec spec;
  spec.model = parse_model(root["model"]);
  if (const json& node = root.value("normalizer", json()); !node.is_null()) {
    spec.normalizer = parse_normalizer(node);
  }
  if (const json& node = root.value("pre_tokenizer", json()); !node.is_null()) {
    const std::string type = type_of(node);
    if (type != "BertPreTokenizer") {
      fail("pre_tokenizer " + type +
           " is not supported (native tokenization supports BertPreTokenizer)");
    }
    spec.bert_pre_tokenizer = true;
  }
  spec.post_processor = parse_post_processor(root.value("post_processor", json()));
  if (const json& node = root.value("truncation", json()); node.is_object()) {
    spec.truncation = parse_truncation(node);
  }
  if (const json& node = root.value("padding", json()); node.is_object()) {
    if (auto id = node.find("pad_id"); id != node.end() && id->is_number_integer()) {
      spec.pad_id = id->get<int64_t>();
    }
    spec.pad_token = value_or<std::string>(node, "pad_token", "");
  }
  for (const json& item : root.value("added_tokens", json::array())) {
    AddedToken token;
    token.id = value_or<int64_t>(item, "id", -1);
    token.content = value_or<std::string>(item, "content", "");
    if (token.id < 0 || token.content.empty()) fail("an added token has no id or content");
    if (value_or(item, "single_word", false)) {
      fail("added token \"" + token.content + "\" uses single_word, which is not supported");
    }
    token.normalized = value_or(item, "normalized", false);
    token.lstrip = value_or(item, "lstrip", false);
    token.rstrip = value_or(item, "rstrip", false);
    spec.added_tokens.push_back(std::move(token));
  }
  return spec;
}

}  // namespace tsrunner::text
