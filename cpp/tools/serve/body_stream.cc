#include "body_stream.h"

#include <utility>

namespace tsrunner::serve {

bool BodyStream::push(std::string piece) {
  if (gone_) return false;
  std::function<void()> notify;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return true;
    pending_ += piece;
    notify = notify_;
  }
  if (notify) notify();
  return !gone_;
}

void BodyStream::close() {
  std::function<void()> notify;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return;
    closed_ = true;
    notify = notify_;
  }
  if (notify) notify();
}

void BodyStream::set_notify(std::function<void()> notify) {
  const std::lock_guard<std::mutex> lock(mutex_);
  notify_ = std::move(notify);
}

bool BodyStream::take(std::string& out) {
  const std::lock_guard<std::mutex> lock(mutex_);
  out += pending_;
  pending_.clear();
  return closed_ && out.empty();
}

void BodyStream::mark_gone() { gone_ = true; }

}  // namespace tsrunner::serve
