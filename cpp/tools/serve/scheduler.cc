#include "scheduler.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "metrics.h"
#include "tsrunner/errors.h"

namespace tsrunner::serve {
namespace {

// A batch is formed from at most this many of the oldest waiting inputs (bounds the sort).
constexpr size_t kBatchCandidates = 4096;

size_t distance(size_t a, size_t b) { return a > b ? a - b : b - a; }

// Tasks of other processes runnable on this machine at this instant: the kernel's count
// (/proc/loadavg's fourth field, or the file the test hook TSR_TEST_LOADAVG names,
// docs/testing.md) less this process's running threads (/proc/self/task: this worker, an
// OpenMP helper still spinning, an HTTP thread). -1 when it cannot be read.
long other_runnable_tasks(const std::string& loadavg_path) {
  std::ifstream loadavg(loadavg_path);
  double one, five, fifteen;
  long running = 0;
  char slash = 0;
  if (!(loadavg >> one >> five >> fifteen >> running >> slash) || slash != '/') return -1;
  long ours = 0;
  std::error_code error;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", error)) {
    std::ifstream stat(task.path() / "stat");
    std::string line;
    std::getline(stat, line);
    const size_t name_end = line.rfind(')');  // the state follows the name, which may hold ')'
    if (name_end != std::string::npos && name_end + 2 < line.size() && line[name_end + 2] == 'R') {
      ++ours;
    }
  }
  return std::max(0L, running - ours);
}

// Padding tokens a batch may carry beyond its inputs' own tokens. Padding costs as much as real
// tokens (about 0.21 ms per token on one Zen 4 core with MiniLM), while a batch of its own costs a
// fixed ~3 ms, about 16 tokens' worth (docs/serve.md): an input that would pad the batch by more
// waits for a batch of its own length, which at high load forms in the next take.
size_t allowed_padding(size_t own_tokens) { return 16 + own_tokens / 8; }

}  // namespace

struct Scheduler::Request {
  Submission submission;
  std::mutex mutex;
  std::vector<Prediction> predictions;
  size_t remaining = 0;
  std::string error;
  bool invalid_input = false;
  size_t tokens = 0;
};

Scheduler::Scheduler(std::vector<const Pipeline*> pipelines, BatchingOptions options,
                     Metrics& metrics)
    : pipelines_(std::move(pipelines)),
      options_(options),
      metrics_(metrics),
      queues_(pipelines_.size()),
      queued_tokens_(pipelines_.size(), 0) {
  if (const char* hook = std::getenv("TSR_TEST_LOADAVG")) loadavg_path_ = hook;
  options_.workers = std::max<size_t>(options_.workers, 1);
  options_.max_batch_requests = std::max<size_t>(options_.max_batch_requests, 1);
  for (size_t w = 0; w < options_.workers; ++w) workers_.emplace_back([this, w] { work(w); });
}

Scheduler::~Scheduler() { stop(); }

void Scheduler::submit(Submission submission) {
  auto request = std::make_shared<Request>();
  const size_t count = submission.inputs.size();
  const size_t model = submission.model;
  request->predictions.resize(count);
  request->remaining = count;
  for (const auto& windows : submission.inputs) {
    for (const Encoding& encoding : windows) request->tokens += encoding.size();
  }
  request->submission = std::move(submission);
  if (count == 0) {
    request->submission.done(Outcome{});
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < count; ++i) {
      const auto& windows = request->submission.inputs[i];
      size_t length = 0;
      for (const Encoding& encoding : windows) length = std::max(length, encoding.size());
      queues_[model].push_back(Pending{request, i, length, windows.size(), now});
      queued_tokens_[model] += length * windows.size();
    }
    pending_inputs_ += count;
  }
  wake_.notify_all();
}

void Scheduler::run(std::function<void()> job) {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  wake_.notify_all();  // the first worker may be busy: another takes it
}

size_t Scheduler::queue_depth() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return pending_inputs_ + jobs_.size();
}

void Scheduler::stop() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
  workers_.clear();
}

void Scheduler::work(size_t index) {
  // OpenMP keeps the intra-op thread count per thread: set it on every worker.
  at::set_num_threads(options_.intra_op_threads);
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    // The first worker takes work first; the others only while it is busy. So a lone batch is
    // always the first worker's, and only that thread ever opens an OpenMP team wider than
    // --threads: libgomp stops spinning between parallel regions (and each small operator then
    // pays a futex wake-up) once its teams hold more threads than there are cores, which made
    // a second thread useless when any worker could run the lone batch (docs/serve.md).
    wake_.wait(lock, [&] {
      if (lone_batch_running_) return false;
      if (stopping_) return true;
      return (!jobs_.empty() || pending_inputs_ > 0) && (index == 0 || first_worker_busy_);
    });
    if (!jobs_.empty()) {
      std::function<void()> job = std::move(jobs_.front());
      jobs_.pop_front();
      if (index == 0) first_worker_busy_ = true;
      wake_.notify_all();  // what else waits is the others' now
      lock.unlock();
      job();
      lock.lock();
      if (index == 0) first_worker_busy_ = false;
      continue;
    }
    if (pending_inputs_ == 0) {
      if (stopping_) return;
      continue;
    }
    // The model whose oldest input has waited longest.
    size_t model = 0;
    for (size_t m = 0; m < queues_.size(); ++m) {
      if (queues_[m].empty()) continue;
      if (queues_[model].empty() || queues_[m].front().queued < queues_[model].front().queued) {
        model = m;
      }
    }
    const auto deadline = queues_[model].front().queued + options_.max_wait;
    const bool full = queued_tokens_[model] >= options_.max_batch_tokens ||
                      queues_[model].size() >= options_.max_batch_requests;
    if (!stopping_ && !full && std::chrono::steady_clock::now() < deadline) {
      wake_.wait_until(lock, deadline);
      continue;
    }
    std::vector<Pending> batch = take_batch(model);
    // Alone on the machine: this batch takes every core's threads (measured in docs/serve.md).
    bool lone = index == 0 && options_.lone_batch_threads > options_.intra_op_threads &&
                busy_workers_ == 0 && pending_inputs_ == 0 && jobs_.empty();
    if (lone) {
      // Only on free cores: an OpenMP team sharing its cores with other work waits at every
      // barrier for a descheduled member (measured on 2 cores with a compiler running: a lone
      // sentence ~400 ms on 2 threads against 10-16 ms on 1, docs/serve.md). Of this count and
      // the previous one the smaller: a task runnable for an instant is not a busy core, one
      // seen both times is.
      const long others = other_runnable_tasks(loadavg_path_);
      const long seen = std::min(others, last_other_runnable_);
      last_other_runnable_ = others;
      const long cores = std::max(1u, std::thread::hardware_concurrency());
      lone = seen >= 0 && seen + options_.lone_batch_threads <= cores;
    }
    ++busy_workers_;
    if (index == 0) first_worker_busy_ = true;
    lone_batch_running_ = lone;
    if (pending_inputs_ > 0) wake_.notify_all();  // another worker takes the next batch
    lock.unlock();
    if (lone) {
      at::set_num_threads(options_.lone_batch_threads);
      metrics_.count_lone_batch();
    }
    run_batch(model, batch);
    if (lone) at::set_num_threads(options_.intra_op_threads);
    batch.clear();  // drops the requests' references outside the lock
    lock.lock();
    --busy_workers_;
    if (index == 0) first_worker_busy_ = false;
    if (lone) {
      lone_batch_running_ = false;
      wake_.notify_all();  // what came meanwhile waits for the other workers too
    }
  }
}

std::vector<Scheduler::Pending> Scheduler::take_batch(size_t model) {
  std::deque<Pending>& queue = queues_[model];
  const Pipeline& pipeline = *pipelines_[model];
  const size_t candidates = std::min(queue.size(), kBatchCandidates);
  // The idle workers (this one included) share what waits: one batch of everything would leave
  // the others idle while clients wait for their answers before sending more.
  const size_t idle =
      std::max<size_t>(options_.workers - std::min(busy_workers_, options_.workers), 1);
  const size_t max_inputs =
      std::min(options_.max_batch_requests, std::max<size_t>((queue.size() + idle - 1) / idle, 1));
  const size_t anchor = queue.front().length;
  // The oldest first, then by closeness of length to it, then by age.
  std::vector<size_t> order(candidates);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return distance(queue[a].length, anchor) < distance(queue[b].length, anchor);
  });
  std::vector<bool> chosen(candidates, false);
  size_t longest = 0, rows = 0, count = 0;
  size_t own_tokens = 0;  // what the inputs would take padded alone (their own lengths)
  const TaskOptions& options = queue.front().request->submission.options;  // the oldest's
  for (size_t i : order) {
    if (queue[i].request->submission.options != options) continue;
    if (count >= max_inputs) break;
    const size_t next_longest = std::max(longest, queue[i].length);
    const size_t next_rows = rows + queue[i].windows;
    const size_t next_padded = pipeline.padded_length(next_longest) * next_rows;
    const size_t next_own = own_tokens + pipeline.padded_length(queue[i].length) * queue[i].windows;
    if (count > 0 && (next_padded > options_.max_batch_tokens ||
                      next_padded - next_own > allowed_padding(next_own))) {
      continue;
    }
    chosen[i] = true;
    longest = next_longest;
    rows = next_rows;
    own_tokens = next_own;
    ++count;
  }
  std::vector<Pending> batch;
  std::deque<Pending> rest;
  for (size_t i = 0; i < queue.size(); ++i) {
    if (i < candidates && chosen[i]) {
      queued_tokens_[model] -= queue[i].length * queue[i].windows;
      batch.push_back(std::move(queue[i]));
    } else {
      rest.push_back(std::move(queue[i]));
    }
  }
  queue.swap(rest);
  pending_inputs_ -= batch.size();
  return batch;
}

void Scheduler::run_batch(size_t model, std::vector<Pending>& batch) {
  const Pipeline& pipeline = *pipelines_[model];
  std::vector<std::vector<Encoding>> inputs;
  std::vector<std::string_view> texts, pairs;
  size_t rows = 0, longest = 0;
  const auto started = std::chrono::steady_clock::now();
  for (const Pending& pending : batch) {
    const Submission& submission = pending.request->submission;
    inputs.push_back(submission.inputs[pending.index]);  // a copy: a failed batch reruns them
    texts.push_back(submission.texts[pending.index]);
    pairs.push_back(submission.pairs.empty() ? std::string_view()
                                             : std::string_view(submission.pairs[pending.index]));
    rows += pending.windows;
    longest = std::max(longest, pending.length);
    metrics_.observe_queue_time(std::chrono::duration<double>(started - pending.queued).count());
  }
  std::string error;
  bool invalid_input = false;
  try {
    std::vector<Prediction> predictions = pipeline.predict_encodings(
        std::move(inputs), texts, pairs, rows, 1, batch.front().request->submission.options);
    metrics_.observe_batch(
        batch.size(), pipeline.padded_length(longest) * rows,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    for (size_t i = 0; i < batch.size(); ++i) finish(batch[i], &predictions[i], "", false);
    return;
  } catch (const InvalidInput& failure) {
    error = failure.what();
    invalid_input = true;
  } catch (const std::exception& failure) {
    error = failure.what();
  }
  if (batch.size() == 1) {
    finish(batch.front(), nullptr, error, invalid_input);
    return;
  }
  // Find the input at fault: each runs alone and answers for itself.
  for (Pending& pending : batch) {
    std::vector<Pending> alone{std::move(pending)};
    run_batch(model, alone);
  }
}

void Scheduler::finish(Pending& pending, Prediction* prediction, const std::string& error,
                       bool invalid_input) {
  Request& request = *pending.request;
  std::function<void(Outcome)> done;
  Outcome outcome;
  {
    const std::lock_guard<std::mutex> lock(request.mutex);
    if (prediction != nullptr) {
      request.predictions[pending.index] = std::move(*prediction);
    } else if (request.error.empty()) {
      request.error = "input " + std::to_string(pending.index) + ": " + error;
      request.invalid_input = invalid_input;
    }
    if (--request.remaining > 0) return;
    outcome.error = std::move(request.error);
    outcome.invalid_input = request.invalid_input;
    outcome.tokens = request.tokens;
    if (outcome.error.empty()) outcome.predictions = std::move(request.predictions);
    done = std::move(request.submission.done);
  }
  done(std::move(outcome));
}

}  // namespace tsrunner::serve
