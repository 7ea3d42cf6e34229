#include "generation_job.h"

#include <future>
#include <memory>
#include <thread>
#include <utility>

#include "metrics.h"

namespace tsrunner::serve {

void GenerationJobs::start(const Generator& generator, GenerationJob job) {
  for (size_t i = 0; i < job.prompts.size(); ++i) generator.check(job.prompts[i], job.params[i]);
  auto shared = std::make_shared<GenerationJob>(std::move(job));
  std::vector<std::future<GenerationResult>> futures;
  futures.reserve(shared->prompts.size());
  for (size_t i = 0; i < shared->prompts.size(); ++i) {
    ChunkCallback callback;
    if (shared->on_chunk) {
      callback = [shared, i](const GenerationChunk& chunk) { return shared->on_chunk(i, chunk); };
    }
    futures.push_back(generator.submit(shared->prompts[i], shared->params[i], std::move(callback)));
  }
  metrics_.generation_started(futures.size());
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    ++running_;
  }
  // A thread per request: a future cannot call back, and the sequences of a request finish in
  // any order with those of other requests. It sleeps until its last sequence ends.
  std::thread([this, shared, futures = std::move(futures)]() mutable {
    std::vector<GenerationResult> results;
    std::exception_ptr error;
    for (auto& future : futures) {
      try {
        results.push_back(future.get());
        const GenerationResult& result = results.back();
        metrics_.generation_finished(result.finish_reason, result.prompt_tokens,
                                     result.token_ids.size());
      } catch (...) {
        if (!error) error = std::current_exception();
        metrics_.generation_finished("error", 0, 0);
      }
    }
    if (error) results.clear();
    shared->on_done(std::move(results), error);
    shared.reset();  // the callbacks' captures (the HTTP call) go before the count drops
    const std::lock_guard<std::mutex> lock(mutex_);
    if (--running_ == 0) idle_.notify_all();
  }).detach();
}

void GenerationJobs::wait_idle() {
  std::unique_lock<std::mutex> lock(mutex_);
  idle_.wait(lock, [this] { return running_ == 0; });
}

}  // namespace tsrunner::serve
