#include "tsrunner/tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <unordered_set>

#include "tokenizer/added_tokens.h"
#include "tokenizer/tokenizer_json.h"
#include "tsrunner/errors.h"

namespace tsrunner {

using text::NormalizedText;
using text::Segment;
using text::TokenList;

namespace {

// An added token's id first (they win over the model's vocabulary, as in HF), then the model's.
std::optional<int64_t> find_token(const text::TokenizerSpec& spec, const std::string& token) {
  for (const text::AddedToken& added : spec.added_tokens) {
    if (added.content == token) return added.id;
  }
  auto it = spec.model->vocab.find(token);
  if (it == spec.model->vocab.end()) return std::nullopt;
  return it->second;
}

}  // namespace

struct Tokenizer::Impl {
  text::TokenizerSpec spec;
  text::AddedTokenMatcher raw_matcher;         // added tokens with normalized=false
  text::AddedTokenMatcher normalized_matcher;  // added tokens with normalized=true
  std::unordered_map<int64_t, std::string> id_to_token;
  int64_t pad_id = 0;
  std::string pad_token;

  std::unordered_set<int64_t> special_ids;  // added tokens marked special

  // Tokenizes one piece of text between added tokens; every pre-tokenized piece is a word.
  void tokenize_words(const NormalizedText& normalized, TokenList& out, int64_t& word) const {
    std::vector<NormalizedText> pieces{normalized};
    if (spec.pre_tokenizer) spec.pre_tokenizer->pre_tokenize(pieces);
    for (const NormalizedText& piece : pieces) {
      if (piece.empty()) continue;
      const size_t first = out.size();
      spec.model->tokenize(piece, out);
      for (size_t i = first; i < out.size(); ++i) out[i].word = word;
      ++word;
    }
  }

  static void add_token(const Segment& segment, TokenList& out, int64_t& word) {
    const text::ByteSpan span{segment.text.spans.front().begin, segment.text.spans.back().end};
    // HF's token text is what matched, with the whitespace lstrip/rstrip took.
    out.push_back({segment.token->id, text::to_utf8(segment.text.chars), span, word++});
  }

  TokenList tokenize(std::string_view input) const {
    TokenList tokens;
    int64_t word = 0;
    for (const Segment& raw : raw_matcher.split(text::decode_utf8(input))) {
      if (raw.token) {
        add_token(raw, tokens, word);
        continue;
      }
      const NormalizedText normalized =
          spec.normalizer ? spec.normalizer->normalize(raw.text) : raw.text;
      for (const Segment& part : normalized_matcher.split(normalized)) {
        if (part.token) {
          add_token(part, tokens, word);
        } else {
          tokenize_words(part.text, tokens, word);
        }
      }
    }
    return tokens;
  }
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

const Tokenizer::Impl& Tokenizer::impl() const {
  if (!impl_) throw Error("tsrunner::Tokenizer used after move");
  return *impl_;
}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::from_json(const std::string& json_text, std::optional<size_t> max_length) {
  auto impl = std::make_unique<Impl>();
  impl->spec = text::parse_tokenizer_json(json_text);
  text::TokenizerSpec& spec = impl->spec;
  if (max_length) {
    if (!spec.truncation) spec.truncation = text::Truncation{};
    spec.truncation->max_length = *max_length;
  }

  std::vector<text::AddedToken> raw_tokens;
  std::vector<text::AddedToken> normalized_tokens;
  for (text::AddedToken token : spec.added_tokens) {
    const NormalizedText content = text::decode_utf8(token.content);
    if (token.normalized && spec.normalizer) {
      token.pattern = spec.normalizer->normalize(content).chars;
      normalized_tokens.push_back(std::move(token));
    } else {
      token.pattern = content.chars;
      raw_tokens.push_back(std::move(token));
    }
  }
  impl->raw_matcher = text::AddedTokenMatcher(std::move(raw_tokens));
  impl->normalized_matcher = text::AddedTokenMatcher(std::move(normalized_tokens));

  impl->id_to_token = spec.model->token_of_id;
  for (const text::AddedToken& token : spec.added_tokens) {
    impl->id_to_token[token.id] = token.content;
    if (token.special) impl->special_ids.insert(token.id);
  }
  if (spec.pad_id) {
    impl->pad_id = *spec.pad_id;
  } else {
    for (const char* name : {"[PAD]", "<pad>"}) {
      if (auto id = find_token(spec, name)) {
        impl->pad_id = *id;
        break;
      }
    }
  }
  impl->pad_token = impl->id_to_token.count(impl->pad_id) ? impl->id_to_token[impl->pad_id] : "";
  return Tokenizer(std::move(impl));
}

Encoding Tokenizer::encode(std::string_view text, std::optional<std::string_view> pair) const {
  TokenList first = impl().tokenize(text);
  std::optional<TokenList> second;
  if (pair) second = impl().tokenize(*pair);
  TokenList* second_ptr = second ? &*second : nullptr;
  const size_t tokens = first.size() + (second ? second->size() : 0);
  if (impl().spec.truncation) {
    text::truncate(*impl().spec.truncation, impl().spec.post_processor.added_tokens(second_ptr),
                   first, second_ptr);
  }
  Encoding encoding = impl().spec.post_processor.apply(first, second_ptr);
  encoding.truncated = first.size() + (second ? second->size() : 0) < tokens;
  return encoding;
}

std::vector<Encoding> Tokenizer::encode_windows(std::string_view text, std::string_view pair,
                                                size_t stride,
                                                std::optional<size_t> max_length) const {
  const TokenList first = impl().tokenize(text);
  const TokenList second = impl().tokenize(pair);
  const text::PostProcessor& post_processor = impl().spec.post_processor;
  const size_t added = post_processor.added_tokens(true);
  const std::optional<size_t> limit = max_length ? max_length : this->max_length();
  if (!limit || first.size() + second.size() + added <= *limit) {
    return {post_processor.apply(first, &second)};
  }
  if (*limit <= first.size() + added) {
    throw InvalidInput("the first text takes " + std::to_string(first.size()) + " tokens (and " +
                       std::to_string(added) + " special tokens) of the " + std::to_string(*limit) +
                       " the export allows: none are left for its pair");
  }
  const size_t window = *limit - first.size() - added;
  std::vector<Encoding> encodings;
  // HF refuses a stride as long as the window; a usable answer beats an error here.
  const size_t overlap = stride < window ? stride : window / 2;
  for (const TokenList& part : text::windows(second, window, overlap)) {
    encodings.push_back(post_processor.apply(first, &part));
  }
  return encodings;
}

std::vector<Encoding> Tokenizer::encode_batch(const std::vector<std::string>& texts,
                                              const std::vector<std::string>& pairs,
                                              size_t pad_to) const {
  if (!pairs.empty() && pairs.size() != texts.size()) {
    throw InvalidInput("got " + std::to_string(texts.size()) + " texts but " +
                       std::to_string(pairs.size()) + " pairs");
  }
  std::vector<Encoding> encodings;
  encodings.reserve(texts.size());
  if (pad_to > kMaxPaddedLength) pad(encodings, pad_to);  // refuses it before any work
  size_t longest = pad_to;
  for (size_t i = 0; i < texts.size(); ++i) {
    encodings.push_back(pairs.empty() ? encode(texts[i]) : encode(texts[i], pairs[i]));
    longest = std::max(longest, encodings.back().size());
  }
  pad(encodings, longest);
  return encodings;
}

void Tokenizer::pad(std::vector<Encoding>& encodings, size_t length) const {
  if (length > kMaxPaddedLength) {
    throw InvalidInput("cannot pad to " + std::to_string(length) + " tokens (at most " +
                       std::to_string(kMaxPaddedLength) + ")");
  }
  for (Encoding& encoding : encodings) {
    const size_t missing = length > encoding.size() ? length - encoding.size() : 0;
    encoding.ids.insert(encoding.ids.end(), missing, impl().pad_id);
    encoding.type_ids.insert(encoding.type_ids.end(), missing, 0);
    encoding.attention_mask.insert(encoding.attention_mask.end(), missing, 0);
    encoding.tokens.insert(encoding.tokens.end(), missing, impl().pad_token);
    encoding.offsets.insert(encoding.offsets.end(), missing, {0, 0});
    encoding.sequence_ids.insert(encoding.sequence_ids.end(), missing, -1);
    encoding.word_ids.insert(encoding.word_ids.end(), missing, -1);
  }
}

std::optional<size_t> Tokenizer::max_length() const {
  if (!impl().spec.truncation || impl().spec.truncation->max_length == 0) return std::nullopt;
  return impl().spec.truncation->max_length;
}

int64_t Tokenizer::pad_id() const { return impl().pad_id; }

size_t Tokenizer::vocab_size() const { return impl().spec.model->vocab.size(); }

std::optional<int64_t> Tokenizer::token_to_id(const std::string& token) const {
  return find_token(impl().spec, token);
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int64_t id : ids) {
    auto it = impl().id_to_token.find(id);
    if (it == impl().id_to_token.end()) continue;  // unknown ids are skipped, as in HF
    if (skip_special_tokens && impl().special_ids.count(id)) continue;
    tokens.push_back(it->second);
  }
  return decode_tokens(std::move(tokens));
}

std::string Tokenizer::decode_tokens(std::vector<std::string> tokens) const {
  if (!impl().spec.decoder) {
    std::string joined;
    for (size_t i = 0; i < tokens.size(); ++i) joined += (i ? " " : "") + tokens[i];
    return joined;
  }
  impl().spec.decoder->decode_chain(tokens);
  std::string text;
  for (const std::string& token : tokens) text += token;
  return text;
}

std::optional<int64_t> Tokenizer::unknown_id() const { return impl().spec.model->unknown_id; }

std::string Tokenizer::id_to_token(int64_t id) const {
  auto it = impl().id_to_token.find(id);
  return it == impl().id_to_token.end() ? std::string() : it->second;
}

}  // namespace tsrunner
