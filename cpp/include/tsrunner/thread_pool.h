#pragma once

#include <cstddef>
#include <functional>
#include <future>
#include <memory>
#include <optional>

#include "tsrunner/export.h"

namespace tsrunner {

// Worker threads started once and kept, fed from a bounded queue: what Pipeline runs
// concurrent batches on (no thread start per call), and what a server can share between
// requests. Thread-safe; destroy it only after every call into it returned, and never from
// one of its own workers.
class TSR_API ThreadPool {
 public:
  static constexpr size_t kDefaultQueueCapacity = 4096;

  // Starts `workers` threads (0: none until reserve()). At most `queue_capacity` tasks wait
  // at once. Throws Error when a thread cannot be started.
  explicit ThreadPool(size_t workers = 0, size_t queue_capacity = kDefaultQueueCapacity);
  // Runs the tasks already queued, then joins the workers.
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  size_t workers() const;

  // Grows the pool to at least `workers` threads; it never shrinks. Throws Error when a thread
  // cannot be started (the pool keeps the ones it has).
  void reserve(size_t workers);

  // Queues `task`; what it throws comes out of the future's get(). nullopt when the queue is
  // full or the pool is shutting down: the caller decides (run it itself, answer "busy").
  std::optional<std::future<void>> try_submit(std::function<void()> task);

  // Calls fn(0) ... fn(count - 1), at most `parallelism` at a time: on the calling thread and
  // on up to parallelism - 1 workers, which run them with `intra_op_threads` LibTorch intra-op
  // threads (0: as they are). Returns when all are done. When a call throws, no further index
  // starts and the first exception is rethrown here once the running calls have finished. The
  // calling thread always takes part, so this finishes even when every worker is busy, the
  // queue is full, or it is called from a worker.
  void parallel_for(size_t count, size_t parallelism, int intra_op_threads,
                    const std::function<void(size_t)>& fn);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace tsrunner
