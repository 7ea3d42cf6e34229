#include "tokenizer/unigram.h"

#include <cstdio>
#include <limits>

#include "tsrunner/errors.h"

namespace tsrunner::text {

void Unigram::set_pieces(std::vector<std::pair<std::string, double>> pieces) {
  vocab.clear();
  scores_.clear();
  edges_.clear();
  node_id_.assign(1, -1);
  min_score_ = std::numeric_limits<double>::infinity();
  for (size_t id = 0; id < pieces.size(); ++id) {
    const auto& [piece, score] = pieces[id];
    vocab[piece] = static_cast<int64_t>(id);  // a repeated piece: the last id wins, as in HF
    scores_.push_back(score);
    if (score < min_score_) min_score_ = score;
    uint32_t node = 0;
    for (char byte : piece) {
      const uint64_t edge = (static_cast<uint64_t>(node) << 8) | static_cast<unsigned char>(byte);
      auto it = edges_.find(edge);
      if (it == edges_.end()) {
        it = edges_.emplace(edge, static_cast<uint32_t>(node_id_.size())).first;
        node_id_.push_back(-1);
      }
      node = it->second;
    }
    node_id_[node] = static_cast<int64_t>(id);
  }
  index_vocab();
}

void Unigram::tokenize(const NormalizedText& piece, TokenList& out) const {
  if (piece.empty()) return;
  std::string text;
  std::vector<uint32_t> char_of_byte;  // the character each byte belongs to
  for (size_t i = 0; i < piece.size(); ++i) {
    append_utf8(text, piece.chars[i]);
    char_of_byte.resize(text.size(), static_cast<uint32_t>(i));
  }
  // A word's segmentation depends on its characters alone.
  if (cache_.emit(text, piece, out)) return;
  WordCache::Pieces pieces;
  segment(text, char_of_byte, pieces);
  WordCache::append(pieces, piece, out);
  cache_.remember(text, pieces);
}

void Unigram::segment(const std::string& text, const std::vector<uint32_t>& char_of_byte,
                      WordCache::Pieces& pieces) const {
  const size_t size = text.size();
  struct Node {
    int64_t id = 0;
    double score = 0;
    long starts_at = -1;
  };
  std::vector<Node> best(size + 1);
  constexpr double kUnknownPenalty = 10.0;
  const double unk_score = min_score_ - kUnknownPenalty;
  size_t start = 0;
  while (start < size) {
    const double score_here = best[start].score;
    const size_t char_length = [&] {
      size_t end = start + 1;
      while (end < size && char_of_byte[end] == char_of_byte[start]) ++end;
      return end - start;
    }();
    bool has_single_node = false;
    uint32_t node = 0;
    for (size_t end = start; end < size; ++end) {
      const uint64_t edge =
          (static_cast<uint64_t>(node) << 8) | static_cast<unsigned char>(text[end]);
      const auto it = edges_.find(edge);
      if (it == edges_.end()) break;
      node = it->second;
      const int64_t id = node_id_[node];
      if (id < 0) continue;
      Node& target = best[end + 1];
      const double candidate = scores_[static_cast<size_t>(id)] + score_here;
      if (target.starts_at < 0 || candidate > target.score) {
        target = {id, candidate, static_cast<long>(start)};
      }
      if (end + 1 - start == char_length) has_single_node = true;
    }
    if (!has_single_node) {
      Node& target = best[start + char_length];
      const double candidate = unk_score + score_here;
      if (target.starts_at < 0 || candidate > target.score) {
        target = {unk_id.value_or(-1), candidate, static_cast<long>(start)};
      }
    }
    start += char_length;
  }

  // Back from the end; consecutive unknown pieces fuse.
  struct Range {
    size_t begin;
    size_t end;
  };
  std::vector<Range> ranges;
  bool previous_unknown = false;
  for (size_t end = size; end > 0;) {
    const Node& node = best[end];
    const auto begin = static_cast<size_t>(node.starts_at);
    const bool unknown = unk_id && node.id == *unk_id;
    if (unknown && previous_unknown) {
      ranges.back().begin = begin;
    } else {
      ranges.push_back({begin, end});
    }
    previous_unknown = unknown;
    end = begin;
  }
  char byte_token[8];
  for (auto it = ranges.rbegin(); it != ranges.rend(); ++it) {
    std::string value = text.substr(it->begin, it->end - it->begin);
    const uint32_t first = char_of_byte[it->begin];
    const uint32_t last = char_of_byte[it->end - 1] + 1;
    if (auto found = vocab.find(value); found != vocab.end()) {
      pieces.push_back({found->second, std::move(value), first, last});
      continue;
    }
    if (byte_fallback) {
      WordCache::Pieces bytes;
      for (char byte : value) {
        std::snprintf(byte_token, sizeof(byte_token), "<0x%02X>", static_cast<unsigned char>(byte));
        auto id = vocab.find(byte_token);
        if (id == vocab.end()) break;
        bytes.push_back({id->second, byte_token, first, last});
      }
      if (bytes.size() == value.size()) {
        pieces.insert(pieces.end(), bytes.begin(), bytes.end());
        continue;
      }
    }
    if (!unk_id)
      throw InvalidInput(
          "the text has characters the Unigram vocabulary cannot spell "
          "and the tokenizer has no unknown piece (unk_id)");
    pieces.push_back({*unk_id, std::move(value), first, last});
  }
}

}  // namespace tsrunner::text
