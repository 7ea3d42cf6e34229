#include "tokenizer/tokenizer_json.h"

#include <nlohmann/json.hpp>

#include "tokenizer/bert_normalizer.h"
#include "tokenizer/bpe.h"
#include "tokenizer/precompiled.h"
#include "tokenizer/unigram.h"
#include "tokenizer/word_level.h"
#include "tokenizer/wordpiece.h"
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

std::u32string u32(const std::string& utf8, const std::string& where) {
  try {
    return decode_utf8(utf8).chars;
  } catch (const InvalidInput&) {
    fail(where + " is not valid UTF-8");
  }
}

char32_t one_char(const json& node, const char* key, char32_t fallback, const std::string& where) {
  const std::string text = value_or<std::string>(node, key, "");
  if (text.empty()) return fallback;
  const std::u32string chars = u32(text, where);
  if (chars.size() != 1) fail(where + "." + key + " must be one character");
  return chars[0];
}

// A "pattern" object: {"String": "..."} or {"Regex": "..."}. Exactly one of the results is set.
void parse_pattern(const json& node, const std::string& where, std::u32string& literal,
                   std::shared_ptr<const Regex>& regex) {
  const json& pattern = node.value("pattern", json());
  if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string()) {
    literal = u32(pattern["String"].get<std::string>(), where);
    return;
  }
  if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string()) {
    regex = std::make_shared<Regex>(pattern["Regex"].get<std::string>(), where);
    return;
  }
  fail(where + ".pattern must be {\"String\": ...} or {\"Regex\": ...}");
}

SplitBehavior parse_behavior(const json& node, const std::string& where) {
  const std::string behavior = value_or<std::string>(node, "behavior", "Isolated");
  if (behavior == "Removed") return SplitBehavior::kRemoved;
  if (behavior == "Isolated") return SplitBehavior::kIsolated;
  if (behavior == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (behavior == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (behavior == "Contiguous") return SplitBehavior::kContiguous;
  fail(where + ": unknown split behavior \"" + behavior + "\"");
}

NormalizerPtr parse_normalizer(const json& node) {
  const std::string type = type_of(node);
  const std::string where = "normalizer " + type;
  if (type == "BertNormalizer") {
    auto normalizer = std::make_shared<BertNormalizer>();
    normalizer->clean_text = value_or(node, "clean_text", true);
    normalizer->handle_chinese_chars = value_or(node, "handle_chinese_chars", true);
    normalizer->lowercase = value_or(node, "lowercase", true);
    // HF: strip_accents null means "strip when lowercasing".
    normalizer->strip_accents = value_or(node, "strip_accents", normalizer->lowercase);
    return normalizer;
  }
  using Form = UnicodeNormalizer::Form;
  if (type == "NFC") return std::make_shared<UnicodeNormalizer>(Form::kNFC);
  if (type == "NFD") return std::make_shared<UnicodeNormalizer>(Form::kNFD);
  if (type == "NFKC") return std::make_shared<UnicodeNormalizer>(Form::kNFKC);
  if (type == "NFKD") return std::make_shared<UnicodeNormalizer>(Form::kNFKD);
  if (type == "Lowercase") return std::make_shared<LowercaseNormalizer>();
  if (type == "StripAccents") return std::make_shared<StripAccentsNormalizer>();
  if (type == "Strip") {
    return std::make_shared<StripNormalizer>(value_or(node, "strip_left", true),
                                             value_or(node, "strip_right", true));
  }
  if (type == "Replace") {
    std::u32string literal;
    std::shared_ptr<const Regex> regex;
    parse_pattern(node, where, literal, regex);
    std::u32string content = u32(value_or<std::string>(node, "content", ""), where);
    if (regex) return std::make_shared<ReplaceNormalizer>(std::move(regex), std::move(content));
    return std::make_shared<ReplaceNormalizer>(std::move(literal), std::move(content));
  }
  if (type == "Prepend") {
    return std::make_shared<PrependNormalizer>(
        u32(value_or<std::string>(node, "prepend", ""), where));
  }
  if (type == "Precompiled") {
    const std::string encoded = value_or<std::string>(node, "precompiled_charsmap", "");
    if (encoded.empty()) return std::make_shared<SequenceNormalizer>(std::vector<NormalizerPtr>{});
    const std::optional<std::string> charsmap = decode_base64(encoded);
    if (!charsmap) fail("normalizer Precompiled: precompiled_charsmap is not base64");
    return std::make_shared<PrecompiledNormalizer>(*charsmap);
  }
  if (type == "Sequence") {
    const json& steps = node.value("normalizers", json());
    if (!steps.is_array()) fail("normalizer Sequence needs a \"normalizers\" array");
    std::vector<NormalizerPtr> parsed;
    for (const json& step : steps) parsed.push_back(parse_normalizer(step));
    return std::make_shared<SequenceNormalizer>(std::move(parsed));
  }
  fail("normalizer " + type + " is not supported");
}

MetaspacePreTokenizer::Prepend parse_prepend_scheme(const json& node, const std::string& where) {
  using Prepend = MetaspacePreTokenizer::Prepend;
  if (node.contains("prepend_scheme") && !node["prepend_scheme"].is_null()) {
    const std::string scheme = value_or<std::string>(node, "prepend_scheme", "always");
    if (scheme == "always") return Prepend::kAlways;
    if (scheme == "never") return Prepend::kNever;
    if (scheme == "first") return Prepend::kFirst;
    fail(where + ": unknown prepend_scheme \"" + scheme + "\"");
  }
  return value_or(node, "add_prefix_space", true) ? Prepend::kAlways : Prepend::kNever;
}

PreTokenizerPtr parse_pre_tokenizer(const json& node) {
  const std::string type = type_of(node);
  const std::string where = "pre_tokenizer " + type;
  if (type == "BertPreTokenizer") return std::make_shared<BertPreTokenizer>();
  if (type == "ByteLevel") {
    return std::make_shared<ByteLevelPreTokenizer>(value_or(node, "add_prefix_space", true),
                                                   value_or(node, "use_regex", true));
  }
  if (type == "Metaspace") {
    return std::make_shared<MetaspacePreTokenizer>(one_char(node, "replacement", 0x2581, where),
                                                   parse_prepend_scheme(node, where),
                                                   value_or(node, "split", true));
  }
  if (type == "Whitespace") return make_whitespace_pre_tokenizer();
  if (type == "WhitespaceSplit") {
    return std::make_shared<PatternPreTokenizer>(&is_white_space, SplitBehavior::kRemoved);
  }
  if (type == "Punctuation") {
    return std::make_shared<PatternPreTokenizer>(&is_punctuation, parse_behavior(node, where));
  }
  if (type == "Digits") {
    return std::make_shared<PatternPreTokenizer>(
        &is_numeric, value_or(node, "individual_digits", false) ? SplitBehavior::kIsolated
                                                                : SplitBehavior::kContiguous);
  }
  if (type == "CharDelimiterSplit") {
    return std::make_shared<PatternPreTokenizer>(one_char(node, "delimiter", U' ', where),
                                                 SplitBehavior::kRemoved);
  }
  if (type == "Split") {
    std::u32string literal;
    std::shared_ptr<const Regex> regex;
    parse_pattern(node, where, literal, regex);
    const SplitBehavior behavior = parse_behavior(node, where);
    const bool invert = value_or(node, "invert", false);
    if (regex) return std::make_shared<PatternPreTokenizer>(std::move(regex), behavior, invert);
    return std::make_shared<PatternPreTokenizer>(std::move(literal), behavior, invert);
  }
  if (type == "Sequence") {
    const json& steps = node.value("pretokenizers", json());
    if (!steps.is_array()) fail("pre_tokenizer Sequence needs a \"pretokenizers\" array");
    std::vector<PreTokenizerPtr> parsed;
    for (const json& step : steps) parsed.push_back(parse_pre_tokenizer(step));
    return std::make_shared<SequencePreTokenizer>(std::move(parsed));
  }
  fail("pre_tokenizer " + type + " is not supported");
}

DecoderPtr parse_decoder(const json& node) {
  const std::string type = type_of(node);
  const std::string where = "decoder " + type;
  if (type == "ByteLevel") return std::make_shared<ByteLevelDecoder>();
  if (type == "WordPiece") {
    return std::make_shared<WordPieceDecoder>(value_or<std::string>(node, "prefix", "##"),
                                              value_or(node, "cleanup", true));
  }
  if (type == "Metaspace") {
    return std::make_shared<MetaspaceDecoder>(
        one_char(node, "replacement", 0x2581, where),
        parse_prepend_scheme(node, where) != MetaspacePreTokenizer::Prepend::kNever);
  }
  if (type == "BPEDecoder") {
    return std::make_shared<BPEDecoder>(value_or<std::string>(node, "suffix", "</w>"));
  }
  if (type == "Replace") {
    std::u32string literal;
    std::shared_ptr<const Regex> regex;
    parse_pattern(node, where, literal, regex);
    std::u32string content = u32(value_or<std::string>(node, "content", ""), where);
    if (regex) return std::make_shared<ReplaceDecoder>(std::move(regex), std::move(content));
    return std::make_shared<ReplaceDecoder>(std::move(literal), std::move(content));
  }
  if (type == "ByteFallback") return std::make_shared<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_shared<FuseDecoder>();
  if (type == "Strip") {
    return std::make_shared<StripDecoder>(one_char(node, "content", U' ', where),
                                          value_or<size_t>(node, "start", 0),
                                          value_or<size_t>(node, "stop", 0));
  }
  if (type == "Sequence") {
    const json& steps = node.value("decoders", json());
    if (!steps.is_array()) fail("decoder Sequence needs a \"decoders\" array");
    std::vector<DecoderPtr> parsed;
    for (const json& step : steps) parsed.push_back(parse_decoder(step));
    return std::make_shared<SequenceDecoder>(std::move(parsed));
  }
  fail("decoder " + type + " is not supported");
}

void read_vocab_object(const json& node, Model& model, const std::string& where) {
  const json& vocab = node.value("vocab", json());
  if (!vocab.is_object() || vocab.empty()) fail(where + ".vocab must be a non-empty object");
  model.vocab.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0) {
      fail(where + ".vocab[\"" + token + "\"] is not a non-negative integer");
    }
    model.vocab.emplace(token, id.get<int64_t>());
  }
  model.index_vocab();
}

std::shared_ptr<const Model> parse_wordpiece(const json& node) {
  auto model = std::make_shared<WordPiece>();
  read_vocab_object(node, *model, "model");
  model->unk_token = value_or<std::string>(node, "unk_token", "[UNK]");
  model->continuing_subword_prefix = value_or<std::string>(node, "continuing_subword_prefix", "##");
  model->max_input_chars_per_word = value_or<size_t>(node, "max_input_chars_per_word", 100);
  auto unk = model->vocab.find(model->unk_token);
  if (unk == model->vocab.end())
    fail("the unknown token " + model->unk_token + " is not in the vocabulary");
  model->unk_id = unk->second;
  model->unknown_id = unk->second;
  return model;
}

std::shared_ptr<const Model> parse_bpe(const json& node) {
  auto model = std::make_shared<BPE>();
  read_vocab_object(node, *model, "model");
  if (node.contains("dropout") && !node["dropout"].is_null()) {
    if (!node["dropout"].is_number() || node["dropout"].get<double>() != 0.0) {
      fail("model BPE: dropout is random and not supported; set it to null");
    }
  }
  if (node.contains("unk_token") && node["unk_token"].is_string()) {
    model->unk_token = node["unk_token"].get<std::string>();
    if (!model->vocab.count(*model->unk_token)) {
      fail("model BPE: the unknown token " + *model->unk_token + " is not in the vocabulary");
    }
    model->unknown_id = model->vocab.at(*model->unk_token);
  }
  model->continuing_subword_prefix = value_or<std::string>(node, "continuing_subword_prefix", "");
  model->end_of_word_suffix = value_or<std::string>(node, "end_of_word_suffix", "");
  model->fuse_unk = value_or(node, "fuse_unk", false);
  model->byte_fallback = value_or(node, "byte_fallback", false);
  model->ignore_merges = value_or(node, "ignore_merges", false);
  const json& merges = node.value("merges", json::array());
  if (!merges.is_array()) fail("model BPE: merges must be an array");
  uint32_t rank = 0;
  for (const json& merge : merges) {
    std::string left;
    std::string right;
    if (merge.is_string()) {
      const std::string text = merge.get<std::string>();
      const size_t space = text.find(' ');
      if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
        fail("model BPE: merge \"" + text + "\" is not two tokens separated by a space");
      }
      left = text.substr(0, space);
      right = text.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
               merge[1].is_string()) {
      left = merge[0].get<std::string>();
      right = merge[1].get<std::string>();
    } else {
      fail("model BPE: merge " + std::to_string(rank) + " is neither \"a b\" nor [\"a\", \"b\"]");
    }
    const std::string error = model->add_merge(left, right, rank);
    if (!error.empty()) fail("model BPE: " + error);
    ++rank;
  }
  return model;
}

std::shared_ptr<const Model> parse_unigram(const json& node) {
  auto model = std::make_shared<Unigram>();
  const json& vocab = node.value("vocab", json());
  if (!vocab.is_array() || vocab.empty()) fail("model Unigram: vocab must be a non-empty array");
  std::vector<std::pair<std::string, double>> pieces;
  pieces.reserve(vocab.size());
  for (const json& item : vocab) {
    if (!item.is_array() || item.size() != 2 || !item[0].is_string() || !item[1].is_number()) {
      fail("model Unigram: vocab item " + std::to_string(pieces.size()) + " is not [piece, score]");
    }
    pieces.emplace_back(item[0].get<std::string>(), item[1].get<double>());
  }
  if (node.contains("unk_id") && !node["unk_id"].is_null()) {
    const auto unk_id = value_or<int64_t>(node, "unk_id", 0);
    if (unk_id < 0 || static_cast<size_t>(unk_id) >= pieces.size()) {
      fail("model Unigram: unk_id is outside the vocabulary");
    }
    model->unk_id = unk_id;
    model->unknown_id = unk_id;
  }
  model->byte_fallback = value_or(node, "byte_fallback", false);
  model->set_pieces(std::move(pieces));
  return model;
}

std::shared_ptr<const Model> parse_word_level(const json& node) {
  auto model = std::make_shared<WordLevel>();
  read_vocab_object(node, *model, "model");
  const std::string unk = value_or<std::string>(node, "unk_token", "<unk>");
  auto it = model->vocab.find(unk);
  if (it == model->vocab.end())
    fail("model WordLevel: the unknown token " + unk + " is not in the vocabulary");
  model->unk_id = it->second;
  model->unknown_id = it->second;
  return model;
}

std::shared_ptr<const Model> parse_model(const json& node, std::string& type) {
  type = type_of(node);
  if (type == "WordPiece") return parse_wordpiece(node);
  if (type == "BPE") return parse_bpe(node);
  if (type == "Unigram") return parse_unigram(node);
  if (type == "WordLevel") return parse_word_level(node);
  fail("model " + type +
       " is not supported (native tokenization supports WordPiece, BPE, "
       "Unigram and WordLevel); pass token ids");
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

std::pair<std::string, int64_t> token_and_id(const json& node, const char* key,
                                             const std::string& where) {
  const json& value = node.value(key, json());
  if (!value.is_array() || value.size() != 2 || !value[0].is_string() ||
      !value[1].is_number_integer()) {
    fail(where + "." + key + " must be [token, id]");
  }
  return {value[0].get<std::string>(), value[1].get<int64_t>()};
}

void parse_post_processor_into(const json& node, PostProcessor& processor, bool& has_template) {
  const std::string type = type_of(node);
  const std::string where = "post_processor " + type;
  if (type == "TemplateProcessing") {
    const json& special_tokens = node.value("special_tokens", json::object());
    processor.single =
        parse_template(node.value("single", json()), special_tokens, "post_processor.single");
    processor.pair =
        parse_template(node.value("pair", json()), special_tokens, "post_processor.pair");
    has_template = true;
    return;
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    const auto [cls, cls_id] = token_and_id(node, "cls", where);
    const auto [sep, sep_id] = token_and_id(node, "sep", where);
    if (type == "BertProcessing") {
      processor.single = {special_piece(cls, cls_id, 0), sequence_piece(0, 0),
                          special_piece(sep, sep_id, 0)};
      processor.pair = {special_piece(cls, cls_id, 0), sequence_piece(0, 0),
                        special_piece(sep, sep_id, 0), sequence_piece(1, 1),
                        special_piece(sep, sep_id, 1)};
    } else {
      // RoBERTa: <s> A </s></s> B </s>, every type id 0.
      processor.single = {special_piece(cls, cls_id, 0), sequence_piece(0, 0),
                          special_piece(sep, sep_id, 0)};
      processor.pair = {special_piece(cls, cls_id, 0), sequence_piece(0, 0),
                        special_piece(sep, sep_id, 0), special_piece(sep, sep_id, 0),
                        sequence_piece(1, 0),          special_piece(sep, sep_id, 0)};
      processor.trim_offsets = value_or(node, "trim_offsets", true);
      processor.add_prefix_space = value_or(node, "add_prefix_space", true);
    }
    has_template = true;
    return;
  }
  if (type == "ByteLevel") {
    processor.trim_offsets = value_or(node, "trim_offsets", true);
    processor.add_prefix_space = value_or(node, "add_prefix_space", true);
    return;
  }
  if (type == "Sequence") {
    const json& steps = node.value("processors", json());
    if (!steps.is_array()) fail("post_processor Sequence needs a \"processors\" array");
    for (const json& step : steps) {
      bool step_has_template = false;
      parse_post_processor_into(step, processor, step_has_template);
      if (step_has_template && has_template) {
        fail("post_processor Sequence with two templates is not supported");
      }
      has_template = has_template || step_has_template;
    }
    return;
  }
  fail("post_processor " + type + " is not supported");
}

PostProcessor parse_post_processor(const json& node) {
  PostProcessor processor;
  // No post-processor (or one that adds no special tokens): the sequences as they are.
  processor.single = {sequence_piece(0, 0)};
  processor.pair = {sequence_piece(0, 0), sequence_piece(1, 1)};
  if (node.is_null()) return processor;
  bool has_template = false;
  parse_post_processor_into(node, processor, has_template);
  return processor;
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
  spec.model = parse_model(root["model"], spec.model_type);
  if (const json& node = root.value("normalizer", json()); !node.is_null()) {
    spec.normalizer = parse_normalizer(node);
  }
  if (const json& node = root.value("pre_tokenizer", json()); !node.is_null()) {
    spec.pre_tokenizer = parse_pre_tokenizer(node);
  }
  if (const json& node = root.value("decoder", json()); !node.is_null()) {
    spec.decoder = parse_decoder(node);
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
    token.special = value_or(item, "special", false);
    token.normalized = value_or(item, "normalized", !token.special);
    token.lstrip = value_or(item, "lstrip", false);
    token.rstrip = value_or(item, "rstrip", false);
    spec.added_tokens.push_back(std::move(token));
  }
  return spec;
}

}  // namespace tsrunner::text
