#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

#include "tokenizer/model.h"
#include "tokenizer/word_cache.h"

namespace tsrunner::text {

// HF tokenizers' BPE model: a piece starts as one symbol per character (unknown characters
// become byte tokens with byte_fallback, else the unknown token, consecutive ones fused with
// fuse_unk), then the pair with the lowest merge rank is merged, leftmost first, until no
// merge applies.
class BPE : public Model {
 public:
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;

  // Registers merge number `rank` of `left` + `right`. Returns an error message (empty when
  // fine) when a part or the merged token is not in the vocabulary.
  std::string add_merge(const std::string& left, const std::string& right, uint32_t rank);

  void tokenize(const NormalizedText& piece, TokenList& out) const override;

 private:
  struct Merge {
    uint32_t rank;
    int64_t merged_id;
  };
  static uint64_t key(int64_t left, int64_t right) {
    return (static_cast<uint64_t>(left) << 32) ^ static_cast<uint64_t>(right & 0xFFFFFFFF);
  }
  const Merge* find_merge(int64_t left, int64_t right) const;
  void merge(const NormalizedText& piece, WordCache::Pieces& pieces) const;
  std::unordered_map<uint64_t, Merge> merges_;
  WordCache cache_;
};

}  // namespace tsrunner::text
