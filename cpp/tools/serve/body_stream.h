#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <string>

namespace tsrunner::serve {

// The body of an answer written while it is made (Server-Sent Events): a handler responds with
// HttpResponse::stream set, keeps the pointer and pushes pieces from any thread (a generator's
// decoding thread); the server writes them as HTTP chunks as soon as it can and ends the answer
// after close(). The producer learns from push() (or client_gone()) that the client left, so it
// can stop generating for nobody.
class BodyStream {
 public:
  // Queues a piece; false once the client has gone (it closed its connection or a write failed).
  bool push(std::string piece);
  // No more pieces: the answer ends after what is queued.
  void close();
  bool client_gone() const { return gone_; }

  // The server's side (http_server.cc).
  // `notify` runs (on the pushing thread) after every push() and close(); empty: nothing runs.
  void set_notify(std::function<void()> notify);
  // Moves the queued pieces into `out`; true when closed and nothing is left to write.
  bool take(std::string& out);
  void mark_gone();

 private:
  std::mutex mutex_;
  std::string pending_;
  bool closed_ = false;
  std::atomic<bool> gone_{false};
  std::function<void()> notify_;
};

}  // namespace tsrunner::serve
