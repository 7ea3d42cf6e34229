#include "tsrunner/thread_pool.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "intra_op_threads.h"
#include "tsrunner/errors.h"

namespace tsrunner {
namespace {

// One parallel_for call, shared with the helper tasks it queued. A helper that starts after
// the caller returned finds no index left and leaves without touching `fn`, so the caller
// never waits for helpers still in the queue (they may sit behind other callers' work).
struct ParallelCall {
  std::atomic<size_t> next{0};
  size_t count = 0;
  const std::function<void(size_t)>* fn = nullptr;
  int intra_op_threads = 0;
  std::mutex mutex;
  std::condition_variable helpers_done;
  size_t running_helpers = 0;
  std::exception_ptr failure;

  // Runs indices until none are left; a failure takes the rest away from every thread.
  void work() {
    for (size_t i = next++; i < count; i = next++) {
      try {
        (*fn)(i);
      } catch (...) {
        const std::lock_guard<std::mutex> lock(mutex);
        if (!failure) failure = std::current_exception();
        next = count;
      }
    }
  }

  void help() {
    {
      const std::lock_guard<std::mutex> lock(mutex);
      if (next >= count) return;
      ++running_helpers;
    }
    // LibTorch keeps the intra-op thread count per thread (OpenMP, MKL): set it on this worker
    // for this call, as the caller asked.
    if (intra_op_threads > 0 && detail::intra_op_threads() != intra_op_threads) {
      detail::set_intra_op_threads(intra_op_threads);
    }
    work();
    const std::lock_guard<std::mutex> lock(mutex);
    if (--running_helpers == 0) helpers_done.notify_all();
  }
};

}  // namespace

struct ThreadPool::State {
  std::mutex mutex;
  std::condition_variable work_ready;
  std::deque<std::function<void()>> queue;  // each task catches its own exceptions
  std::vector<std::thread> threads;
  size_t queue_capacity = 0;
  bool stopping = false;

  void run_worker() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mutex);
        work_ready.wait(lock, [this] { return stopping || !queue.empty(); });
        if (queue.empty()) return;  // stopping, and nothing left to run
        task = std::move(queue.front());
        queue.pop_front();
      }
      task();
    }
  }

  bool try_push(std::function<void()> task) {
    {
      const std::lock_guard<std::mutex> lock(mutex);
      if (stopping || queue.size() >= queue_capacity) return false;
      queue.push_back(std::move(task));
    }
    work_ready.notify_one();
    return true;
  }
};

ThreadPool::ThreadPool(size_t workers, size_t queue_capacity) : state_(std::make_shared<State>()) {
  if (queue_capacity == 0) throw InvalidInput("a thread pool's queue_capacity must be at least 1");
  state_->queue_capacity = queue_capacity;
  reserve(workers);
}

ThreadPool::~ThreadPool() {
  {
    const std::lock_guard<std::mutex> lock(state_->mutex);
    state_->stopping = true;
  }
  state_->work_ready.notify_all();
  for (std::thread& thread : state_->threads) thread.join();
}

size_t ThreadPool::workers() const {
  const std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->threads.size();
}

void ThreadPool::reserve(size_t workers) {
  const std::lock_guard<std::mutex> lock(state_->mutex);
  State* state = state_.get();
  while (state->threads.size() < workers) {
    try {
      state->threads.emplace_back([state] { state->run_worker(); });
    } catch (const std::system_error& error) {
      throw Error("cannot start worker thread " + std::to_string(state->threads.size() + 1) +
                  " of " + std::to_string(workers) + ": " + error.what());
    }
  }
}

std::optional<std::future<void>> ThreadPool::try_submit(std::function<void()> task) {
  // std::function needs a copyable target; the packaged task is shared, run once.
  auto packaged = std::make_shared<std::packaged_task<void()>>(std::move(task));
  std::future<void> result = packaged->get_future();
  if (!state_->try_push([packaged] { (*packaged)(); })) return std::nullopt;
  return result;
}

void ThreadPool::parallel_for(size_t count, size_t parallelism, int intra_op_threads,
                              const std::function<void(size_t)>& fn) {
  if (parallelism <= 1 || count <= 1) {
    for (size_t i = 0; i < count; ++i) fn(i);
    return;
  }
  const size_t helpers = std::min(parallelism, count) - 1;
  auto call = std::make_shared<ParallelCall>();
  call->count = count;
  call->fn = &fn;
  call->intra_op_threads = intra_op_threads;
  for (size_t h = 0; h < helpers; ++h) {
    if (!state_->try_push([call] { call->help(); })) break;  // full: this thread does more
  }
  call->work();
  std::unique_lock<std::mutex> lock(call->mutex);
  call->helpers_done.wait(lock, [&] { return call->running_helpers == 0; });
  if (call->failure) std::rethrow_exception(call->failure);
}

}  // namespace tsrunner
