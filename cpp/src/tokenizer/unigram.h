#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/model.h"
#include "tokenizer/word_cache.h"

namespace tsrunner::text {

// HF tokenizers' Unigram model (SentencePiece's): the segmentation with the highest total
// score (Viterbi over the vocabulary), a character no piece covers scoring as the unknown
// piece (the lowest score minus 10); consecutive unknown characters fuse into one token,
// which byte_fallback spells as <0xXX> byte pieces when it can.
class Unigram : public Model {
 public:
  // Pieces in id order with their scores.
  void set_pieces(std::vector<std::pair<std::string, double>> pieces);
  std::optional<int64_t> unk_id;
  bool byte_fallback = false;

  void tokenize(const NormalizedText& piece, TokenList& out) const override;

 private:
  std::vector<double> scores_;
  double min_score_ = 0;
  // A byte trie of every piece: (node << 8 | byte) -> child node; the id a node ends.
  std::unordered_map<uint64_t, uint32_t> edges_;
  std::vector<int64_t> node_id_{-1};
  WordCache cache_;

  // The best segmentation of `text` (the piece's characters in UTF-8; char_of_byte: the
  // character each byte belongs to).
  void segment(const std::string& text, const std::vector<uint32_t>& char_of_byte,
               WordCache::Pieces& pieces) const;
};

}  // namespace tsrunner::text
