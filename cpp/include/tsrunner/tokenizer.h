#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tsrunner/export.h"

namespace tsrunner {

// The longest length Tokenizer::pad and encode_batch pad to: far beyond any model's context,
// and a bound that keeps a mistyped length an InvalidInput rather than an allocation failure.
inline constexpr size_t kMaxPaddedLength = size_t{1} << 20;

// One tokenized text (or text pair), ready for the model.
struct TSR_API Encoding {
  std::vector<int64_t> ids;
  std::vector<int64_t> type_ids;
  std::vector<int64_t> attention_mask;  // 1 for real tokens, 0 for padding
  std::vector<std::string> tokens;
  // Byte offsets [begin, end) into the UTF-8 text the token came from (the first text or the
  // pair, see sequence_ids); (0, 0) for special and padding tokens. Byte offsets because C++
  // strings are bytes; the Python binding converts them to character offsets as HF does.
  std::vector<std::pair<size_t, size_t>> offsets;
  // 0 for tokens of the first text, 1 for the pair, -1 for special and padding tokens.
  std::vector<int> sequence_ids;
  // The word each token belongs to, counted within its text (HF's word_ids: a word is what the
  // pre-tokenizer split off, or an added token); -1 for special and padding tokens.
  std::vector<int64_t> word_ids;
  // The tokenizer cut tokens off the text or the pair to fit its max length.
  bool truncated = false;

  size_t size() const { return ids.size(); }

  // Pre-tokenized input: `ids` (with the model's special tokens already in place) as one text.
  // Type ids are 0 unless given, every token is attended and belongs to the first text
  // (sequence id 0); tokens are empty, offsets (0, 0), word ids -1. Throws InvalidInput when
  // `type_ids` is neither empty nor as long as `ids`.
  static Encoding from_ids(std::vector<int64_t> ids, std::vector<int64_t> type_ids = {});

  // Throws InvalidInput, naming `what` (e.g. "input 3") and the field, unless every per-token
  // field has exactly size() entries, attention_mask holds only 0 and 1, sequence_ids only -1, 0
  // and 1, and every offset has begin <= end. Every API that takes an Encoding calls it before
  // reading one, so a malformed encoding is refused instead of read past its end.
  void validate(const std::string& what = "encoding") const;
};

// A Hugging Face fast tokenizer (tokenizer.json) reimplemented natively, producing exactly
// what HF `tokenizers` produces for the same file: WordPiece (BERT), byte-level BPE (GPT-2,
// RoBERTa, BART) and Unigram (XLM-R, T5, ALBERT, DeBERTa-v2) with their normalizers,
// pre-tokenizers, post-processors and decoders, truncation and padding. Components it does
// not implement are refused when loading. Immutable after loading: safe to share across
// threads. See docs/tokenizer.md.
class TSR_API Tokenizer {
 public:
  // `path` is a tsrunner export (.pt: the embedded tsrunner/tokenizer.json, truncated to the
  // manifest's max_length; no TorchScript code runs) or a tokenizer.json (truncated as its
  // "truncation" field says). Throws LoadError when the file is missing, malformed or uses
  // a tokenizer this build does not support. The file is opened on its own and its digest is not
  // checked: for a model a Runner has loaded, use Runner::tokenizer() instead.
  static Tokenizer from_file(const std::string& path);
  // `max_length` overrides the file's truncation length (nullopt: keep the file's setting).
  static Tokenizer from_json(const std::string& json_text, std::optional<size_t> max_length);

  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Tokenizes one text (and optionally its pair) with special tokens, truncated to
  // max_length(); never padded. Throws InvalidInput when a text is not valid UTF-8.
  Encoding encode(std::string_view text, std::optional<std::string_view> pair = std::nullopt) const;

  // Tokenizes a text and its pair, cutting a pair too long for max_length() into overlapping
  // windows, each encoded with the whole first text: Hugging Face's question-answering
  // chunking (truncation="only_second", return_overflowing_tokens, `stride` tokens shared by
  // consecutive windows). One encoding when everything fits. When the first text leaves no
  // more than `stride` tokens for the pair, the stride shrinks to half of that room (HF raises
  // an error there). Throws InvalidInput when the first text leaves no room at all.
  // `max_length` is the window length with special tokens (nullopt: max_length()).
  std::vector<Encoding> encode_windows(std::string_view text, std::string_view pair, size_t stride,
                                       std::optional<size_t> max_length = std::nullopt) const;

  // Tokenizes many texts (with pairs when `pairs` is not empty; then it must be as long as
  // `texts`) and pads every encoding to the longest one, or to `pad_to` when it is larger
  // (for fixed-shape exports). The tokenizer.json's own padding setting is ignored on purpose:
  // the export's shape contract decides the length, and padding to the batch's longest is
  // what makes dynamic-length batches fast.
  std::vector<Encoding> encode_batch(const std::vector<std::string>& texts,
                                     const std::vector<std::string>& pairs = {},
                                     size_t pad_to = 0) const;

  // Pads `encodings` in place to `length` tokens (no-op for longer ones). Throws InvalidInput
  // when `length` exceeds kMaxPaddedLength (encode_batch's `pad_to` too).
  void pad(std::vector<Encoding>& encodings, size_t length) const;

  // The truncation length including special tokens; nullopt when texts are never truncated.
  std::optional<size_t> max_length() const;
  int64_t pad_id() const;
  size_t vocab_size() const;
  std::optional<int64_t> token_to_id(const std::string& token) const;
  // Empty when the id is unknown.
  std::string id_to_token(int64_t id) const;
  // The text of token ids, as HF tokenizers' decode gives it: the tokenizer.json's decoder
  // (WordPiece "##" joining, byte-level bytes back to UTF-8, SentencePiece's "▁" back to
  // spaces, ...) over the tokens; unknown ids are skipped, and special tokens too when
  // `skip_special_tokens`.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = true) const;
  // The text of token strings through the decoder alone (Transformers'
  // convert_tokens_to_string), e.g. the word of a group of tokens.
  std::string decode_tokens(std::vector<std::string> tokens) const;
  // The model's unknown token, when it has one.
  std::optional<int64_t> unknown_id() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  const Impl& impl() const;  // throws Error on a moved-from Tokenizer
  std::unique_ptr<Impl> impl_;
};

}  // namespace tsrunner
