#include "tokenizer/bpe.h"

#include <cstdio>
#include <queue>
#include <vector>

namespace tsrunner::text {

std::string BPE::add_merge(const std::string& left, const std::string& right, uint32_t rank) {
  const auto a = vocab.find(left);
  if (a == vocab.end()) return "merge token \"" + left + "\" is not in the vocabulary";
  const auto b = vocab.find(right);
  if (b == vocab.end()) return "merge token \"" + right + "\" is not in the vocabulary";
  std::string merged = left;
  const bool prefixed =
      !continuing_subword_prefix.empty() &&
      right.compare(0, continuing_subword_prefix.size(), continuing_subword_prefix) == 0;
  merged.append(right, prefixed ? continuing_subword_prefix.size() : 0, std::string::npos);
  const auto m = vocab.find(merged);
  if (m == vocab.end()) return "merged token \"" + merged + "\" is not in the vocabulary";
  merges_[key(a->second, b->second)] = {rank, m->second};  // a repeated merge: the last wins
  return {};
}

const BPE::Merge* BPE::find_merge(int64_t left, int64_t right) const {
  const auto it = merges_.find(key(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

namespace {

struct Symbol {
  int64_t id;
  size_t begin;  // characters of the piece
  size_t end;
  long prev;
  long next;
};

struct QueuedMerge {
  uint32_t rank;
  size_t position;
  int64_t merged_id;
  // std::priority_queue pops the largest: lowest rank first, then leftmost.
  bool operator<(const QueuedMerge& other) const {
    if (rank != other.rank) return rank > other.rank;
    return position > other.position;
  }
};

}  // namespace

void BPE::tokenize(const NormalizedText& piece, TokenList& out) const {
  if (piece.empty()) return;
  const std::string whole = to_utf8(piece.chars);
  if (ignore_merges) {
    if (auto it = vocab.find(whole); it != vocab.end()) {
      out.push_back(
          {it->second, whole, ByteSpan{piece.spans.front().begin, piece.spans.back().end}});
      return;
    }
  }
  // A word's tokens depend on its characters alone: the same word merges the same way.
  if (cache_.emit(whole, piece, out)) return;
  WordCache::Pieces pieces;
  merge(piece, pieces);
  WordCache::append(pieces, piece, out);
  cache_.remember(whole, pieces);
}

void BPE::merge(const NormalizedText& piece, WordCache::Pieces& pieces) const {
  std::vector<Symbol> symbols;
  symbols.reserve(piece.size());
  auto add = [&](int64_t id, size_t begin, size_t end) {
    const long index = static_cast<long>(symbols.size());
    symbols.push_back({id, begin, end, index - 1, index + 1});
  };
  std::optional<int64_t> unk_id;
  if (unk_token) {
    if (auto it = vocab.find(*unk_token); it != vocab.end()) unk_id = it->second;
  }
  // A pending unknown symbol: (id, first character, end character).
  std::optional<Symbol> pending_unk;
  std::string candidate;
  char byte_token[8];
  for (size_t i = 0; i < piece.size(); ++i) {
    candidate.clear();
    if (i > 0) candidate = continuing_subword_prefix;
    append_utf8(candidate, piece.chars[i]);
    if (i + 1 == piece.size()) candidate += end_of_word_suffix;
    if (auto it = vocab.find(candidate); it != vocab.end()) {
      if (pending_unk) {
        add(pending_unk->id, pending_unk->begin, pending_unk->end);
        pending_unk.reset();
      }
      add(it->second, i, i + 1);
      continue;
    }
    if (byte_fallback) {
      std::vector<int64_t> ids;
      for (char byte : candidate) {
        std::snprintf(byte_token, sizeof(byte_token), "<0x%02X>", static_cast<unsigned char>(byte));
        auto it = vocab.find(byte_token);
        if (it == vocab.end()) break;
        ids.push_back(it->second);
      }
      if (ids.size() == candidate.size()) {
        // HF adds the byte tokens without flushing a pending unknown token first.
        for (int64_t id : ids) add(id, i, i + 1);
        continue;
      }
    }
    if (!unk_token) continue;  // no unknown token: the character is dropped
    if (!unk_id) continue;     // checked at load
    if (pending_unk && fuse_unk) {
      pending_unk->end = i + 1;
    } else {
      if (pending_unk) add(pending_unk->id, pending_unk->begin, pending_unk->end);
      pending_unk = Symbol{*unk_id, i, i + 1, 0, 0};
    }
  }
  if (pending_unk) add(pending_unk->id, pending_unk->begin, pending_unk->end);
  if (symbols.empty()) return;
  symbols.back().next = -1;

  std::priority_queue<QueuedMerge> queue;
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const Merge* m = find_merge(symbols[i].id, symbols[i + 1].id)) {
      queue.push({m->rank, i, m->merged_id});
    }
  }
  while (!queue.empty()) {
    const QueuedMerge top = queue.top();
    queue.pop();
    Symbol& current = symbols[top.position];
    if (current.id < 0) continue;  // merged into the symbol before it
    if (current.next < 0) continue;
    const auto next_position = static_cast<size_t>(current.next);
    const Symbol right = symbols[next_position];
    const Merge* m = find_merge(current.id, right.id);
    if (!m || m->merged_id != top.merged_id) continue;  // an expired entry
    current.id = top.merged_id;
    current.end = right.end;
    current.next = right.next;
    symbols[next_position].id = -1;
    if (right.next >= 0)
      symbols[static_cast<size_t>(right.next)].prev = static_cast<long>(top.position);
    if (current.prev >= 0) {
      const Symbol& previous = symbols[static_cast<size_t>(current.prev)];
      if (const Merge* before = find_merge(previous.id, current.id)) {
        queue.push({before->rank, static_cast<size_t>(current.prev), before->merged_id});
      }
    }
    if (current.next >= 0) {
      const Symbol& following = symbols[static_cast<size_t>(current.next)];
      if (const Merge* after = find_merge(current.id, following.id)) {
        queue.push({after->rank, top.position, after->merged_id});
      }
    }
  }
  for (long i = 0; i >= 0 && static_cast<size_t>(i) < symbols.size();
       i = symbols[static_cast<size_t>(i)].next) {
    const Symbol& symbol = symbols[static_cast<size_t>(i)];
    auto it = token_of_id.find(symbol.id);
    pieces.push_back({symbol.id, it == token_of_id.end() ? std::string() : it->second,
                      static_cast<uint32_t>(symbol.begin), static_cast<uint32_t>(symbol.end)});
  }
}

}  // namespace tsrunner::text
