#include "text_stream.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include "tsrunner/tokenizer.h"

namespace tsrunner::detail {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

}  // namespace

TextStream::TextStream(const Tokenizer* tokenizer, std::vector<std::string> stop)
    : tokenizer_(tokenizer), stop_(std::move(stop)) {}

std::string TextStream::push(int64_t token_id) {
  if (stopped_ || tokenizer_ == nullptr) return {};
  ids_.push_back(token_id);
  text_ = tokenizer_->decode(ids_, /*skip_special_tokens=*/true);
  size_t cut = std::string::npos;
  for (const std::string& stop : stop_) cut = std::min(cut, text_.find(stop));
  if (cut != std::string::npos) {
    text_.resize(cut);
    stopped_ = true;
    return finish();
  }
  std::string_view ready = text_;
  while (ends_with(ready, kReplacement)) ready.remove_suffix(kReplacement.size());
  // Hold back the longest tail that a stop string starts with.
  size_t held = 0;
  for (const std::string& stop : stop_) {
    for (size_t n = std::min(stop.size() - 1, ready.size()); n > held; --n) {
      if (ready.substr(ready.size() - n) == std::string_view(stop).substr(0, n)) {
        held = n;
        break;
      }
    }
  }
  ready.remove_suffix(held);
  if (ready.size() <= released_) return {};
  std::string piece(ready.substr(released_));
  released_ = ready.size();
  return piece;
}

std::string TextStream::finish() {
  if (text_.size() <= released_) return {};
  std::string piece = text_.substr(released_);
  released_ = text_.size();
  return piece;
}

}  // namespace tsrunner::detail
