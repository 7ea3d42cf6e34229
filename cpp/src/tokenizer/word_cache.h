#pragma once

#include <cstdint>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/token.h"

namespace tsrunner::text {

// What BPE and Unigram made of a word they already tokenized, as HF tokenizers keeps it (its
// Cache: real text repeats words, so most pieces skip the merges or the Viterbi search). Shared
// by the threads tokenizing with one model: a reader never waits for a writer, a word that
// cannot be stored at once is simply not stored. Bounded like HF's: 10,000 words, then none is
// added; words of 256 bytes or more are never kept.
class WordCache {
 public:
  // One token of a cached word: characters [begin, end) of the word.
  struct Piece {
    int64_t id;
    std::string value;
    uint32_t begin;
    uint32_t end;
  };
  using Pieces = std::vector<Piece>;

  static constexpr size_t kCapacity = 10000;
  static constexpr size_t kMaxWordBytes = 256;

  // Appends the cached tokens of `word` (spans from `piece`, the word's characters) to `out`;
  // false when the word is not cached.
  bool emit(const std::string& word, const NormalizedText& piece, TokenList& out) const {
    if (word.size() >= kMaxWordBytes) return false;
    std::shared_lock lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock()) return false;
    const auto it = words_.find(word);
    if (it == words_.end()) return false;
    append(it->second, piece, out);
    return true;
  }

  // Appends `pieces` as tokens of `piece` to `out`.
  static void append(const Pieces& pieces, const NormalizedText& piece, TokenList& out) {
    for (const Piece& p : pieces) {
      out.push_back(
          {p.id, p.value, ByteSpan{piece.spans[p.begin].begin, piece.spans[p.end - 1].end}});
    }
  }

  void remember(const std::string& word, const Pieces& pieces) const {
    if (word.size() >= kMaxWordBytes) return;
    std::unique_lock lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock() || words_.size() >= kCapacity) return;
    words_.emplace(word, pieces);
  }

 private:
  mutable std::shared_mutex mutex_;
  mutable std::unordered_map<std::string, Pieces> words_;
};

}  // namespace tsrunner::text
