#include "tsrunner/request_queue.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <limits>
#include <mutex>
#include <numeric>
#include <thread>

#include "intra_op_threads.h"
#include "queue/free_cores.h"
#include "tsrunner/errors.h"

namespace tsrunner {
namespace {

// A batch is formed from at most this many of the oldest waiting inputs (bounds the sort).
constexpr size_t kBatchCandidates = 4096;

size_t distance(size_t a, size_t b) { return a > b ? a - b : b - a; }

// Padding tokens a batch may carry beyond its inputs' own tokens. Padding costs as much as real
// tokens (about 0.21 ms per token on one Zen 4 core with MiniLM), while a batch of its own costs a
// fixed ~3 ms, about 16 tokens' worth (docs/serve.md): an input that would pad the batch by more
// waits for a batch of its own length, which at high load forms in the next take.
size_t allowed_padding(size_t own_tokens) { return 16 + own_tokens / 8; }

double seconds_since(std::chrono::steady_clock::time_point start,
                     std::chrono::steady_clock::time_point end) {
  return std::chrono::duration<double>(end - start).count();
}

}  // namespace

class RequestQueue::Impl {
 public:
  Impl(std::vector<const Pipeline*> pipelines, QueueOptions options, QueueObserver* observer);
  // InvalidInput unless `model` is one of the queue's models with a pipeline.
  void check_model(size_t model) const;
  void submit(QueueSubmission submission);
  void run(std::function<void()> job);
  size_t queue_depth() const;
  QueueStats stats() const;
  void stop();

  std::vector<const Pipeline*> pipelines_;
  QueueOptions options_;

 private:
  // One submission while its inputs are answered.
  struct Request {
    QueueSubmission submission;
    std::mutex mutex;
    std::vector<Prediction> predictions;
    size_t remaining = 0;
    std::string error;
    bool invalid_input = false;
    size_t tokens = 0;
  };
  struct Pending {
    std::shared_ptr<Request> request;
    size_t index;    // the input within its request
    size_t length;   // its longest encoding
    size_t windows;  // its encodings
    std::chrono::steady_clock::time_point queued;
  };

  void work(size_t index);
  std::vector<Pending> take_batch(size_t model);  // lock held
  void run_batch(size_t model, std::vector<Pending>& batch);
  void finish(Pending& pending, Prediction* prediction, const std::string& error,
              bool invalid_input);

  QueueObserver* observer_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::deque<Pending>> queues_;  // one per model, oldest first
  std::vector<size_t> queued_tokens_;        // per model
  std::deque<std::function<void()>> jobs_;
  size_t pending_inputs_ = 0;
  size_t busy_workers_ = 0;                     // running a batch
  bool lone_batch_running_ = false;             // a batch on lone_batch_threads: the others wait
  bool first_worker_busy_ = false;              // the others take work only while it is
  std::string loadavg_path_ = "/proc/loadavg";  // whether the cores are free for a lone batch
  // Other processes' runnable tasks at the last look (none yet: the first look decides).
  long last_other_runnable_ = std::numeric_limits<long>::max();
  bool stopping_ = false;
  std::vector<std::thread> workers_;

  std::atomic<uint64_t> submissions_{0}, inputs_{0}, batches_{0}, batched_inputs_{0},
      padded_tokens_{0}, lone_batches_{0};
  std::atomic<size_t> largest_batch_{0};
};

RequestQueue::Impl::Impl(std::vector<const Pipeline*> pipelines, QueueOptions options,
                         QueueObserver* observer)
    : pipelines_(std::move(pipelines)),
      options_(options),
      observer_(observer),
      queues_(pipelines_.size()),
      queued_tokens_(pipelines_.size(), 0) {
  if (pipelines_.empty()) throw InvalidInput("RequestQueue needs at least one pipeline");
  // Test hook (docs/testing.md): a file standing in for /proc/loadavg.
  if (const char* hook = std::getenv("TSR_TEST_LOADAVG")) loadavg_path_ = hook;
  if (options_.intra_op_threads <= 0) options_.intra_op_threads = detail::intra_op_threads();
  options_.workers = std::max<size_t>(options_.workers, 1);
  options_.max_batch_requests = std::max<size_t>(options_.max_batch_requests, 1);
  for (size_t w = 0; w < options_.workers; ++w) workers_.emplace_back([this, w] { work(w); });
}

void RequestQueue::Impl::check_model(size_t model) const {
  if (model >= pipelines_.size()) {
    throw InvalidInput("RequestQueue: model " + std::to_string(model) + " out of range (" +
                       std::to_string(pipelines_.size()) + " models)");
  }
  if (pipelines_[model] == nullptr) {
    throw InvalidInput("RequestQueue: model " + std::to_string(model) +
                       " has no pipeline (it runs raw jobs only)");
  }
}

void RequestQueue::Impl::submit(QueueSubmission submission) {
  const size_t count = submission.inputs.size();
  const size_t model = submission.model;
  if (count > 0 || model >= pipelines_.size()) check_model(model);
  if (!submission.texts.empty() && submission.texts.size() != count) {
    throw InvalidInput("RequestQueue: " + std::to_string(submission.texts.size()) + " texts for " +
                       std::to_string(count) + " inputs");
  }
  if (!submission.pairs.empty() && submission.pairs.size() != count) {
    throw InvalidInput("RequestQueue: " + std::to_string(submission.pairs.size()) + " pairs for " +
                       std::to_string(count) + " inputs");
  }
  if (!submission.choices.empty() && submission.choices.size() != count) {
    throw InvalidInput("RequestQueue: " + std::to_string(submission.choices.size()) +
                       " lists of choices for " + std::to_string(count) + " inputs");
  }
  if (!submission.done) throw InvalidInput("RequestQueue: a submission needs a done callback");
  auto request = std::make_shared<Request>();
  request->predictions.resize(count);
  request->remaining = count;
  for (const auto& windows : submission.inputs) {
    for (const Encoding& encoding : windows) request->tokens += encoding.size();
  }
  request->submission = std::move(submission);
  const auto now = std::chrono::steady_clock::now();
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) throw Error("RequestQueue: stopped, no more submissions");
    ++submissions_;
    inputs_ += count;
    for (size_t i = 0; i < count; ++i) {
      const auto& windows = request->submission.inputs[i];
      size_t length = 0;
      for (const Encoding& encoding : windows) length = std::max(length, encoding.size());
      queues_[model].push_back(Pending{request, i, length, windows.size(), now});
      queued_tokens_[model] += length * windows.size();
    }
    pending_inputs_ += count;
  }
  if (count == 0) {
    request->submission.done(QueueOutcome{});
    return;
  }
  wake_.notify_all();
}

void RequestQueue::Impl::run(std::function<void()> job) {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) throw Error("RequestQueue: stopped, no more jobs");
    jobs_.push_back(std::move(job));
  }
  wake_.notify_all();  // the first worker may be busy: another takes it
}

size_t RequestQueue::Impl::queue_depth() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return pending_inputs_ + jobs_.size();
}

QueueStats RequestQueue::Impl::stats() const {
  QueueStats stats;
  stats.submissions = submissions_;
  stats.inputs = inputs_;
  stats.batches = batches_;
  stats.batched_inputs = batched_inputs_;
  stats.padded_tokens = padded_tokens_;
  stats.lone_batches = lone_batches_;
  stats.largest_batch = largest_batch_;
  return stats;
}

void RequestQueue::Impl::stop() {
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

void RequestQueue::Impl::work(size_t index) {
  // OpenMP keeps the intra-op thread count per thread: set it on every worker.
  detail::set_intra_op_threads(options_.intra_op_threads);
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    // The first worker takes work first; the others only while it is busy. So a lone batch is
    // always the first worker's, and only that thread ever opens an OpenMP team wider than
    // intra_op_threads: libgomp stops spinning between parallel regions (and each small operator
    // then pays a futex wake-up) once its teams hold more threads than there are cores, which
    // made a second thread useless when any worker could run the lone batch (docs/serve.md).
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
      const long others = detail::other_runnable_tasks(loadavg_path_);
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
      detail::set_intra_op_threads(options_.lone_batch_threads);
      ++lone_batches_;
      if (observer_ != nullptr) observer_->on_lone_batch();
    }
    run_batch(model, batch);
    if (lone) detail::set_intra_op_threads(options_.intra_op_threads);
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

std::vector<RequestQueue::Impl::Pending> RequestQueue::Impl::take_batch(size_t model) {
  std::deque<Pending>& queue = queues_[model];
  const Pipeline& pipeline = *pipelines_[model];
  const size_t candidates = std::min(queue.size(), kBatchCandidates);
  // The idle workers (this one included) share what waits: one batch of everything would leave
  // the others idle while clients wait for their answers before sending more.
  const size_t idle =
      std::max<size_t>(options_.workers - std::min(busy_workers_, options_.workers), 1);
  size_t max_inputs =
      std::min(options_.max_batch_requests, std::max<size_t>((queue.size() + idle - 1) / idle, 1));
  const QueueSubmission& oldest = queue.front().request->submission;
  if (oldest.batch_size > 0) max_inputs = std::min(max_inputs, oldest.batch_size);
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
  for (size_t i : order) {
    if (count >= max_inputs) break;
    const QueueSubmission& submission = queue[i].request->submission;
    if (submission.options != oldest.options) continue;
    if (submission.batch_size > 0 && count >= submission.batch_size) continue;
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

void RequestQueue::Impl::run_batch(size_t model, std::vector<Pending>& batch) {
  const Pipeline& pipeline = *pipelines_[model];
  std::vector<std::vector<Encoding>> inputs;
  std::vector<std::string_view> texts, pairs;
  size_t rows = 0, longest = 0;
  const auto started = std::chrono::steady_clock::now();
  for (const Pending& pending : batch) {
    const QueueSubmission& submission = pending.request->submission;
    inputs.push_back(submission.inputs[pending.index]);  // a copy: a failed batch reruns them
    texts.push_back(submission.texts.empty() ? std::string_view()
                                             : std::string_view(submission.texts[pending.index]));
    pairs.push_back(submission.pairs.empty() ? std::string_view()
                                             : std::string_view(submission.pairs[pending.index]));
    rows += pending.windows;
    longest = std::max(longest, pending.length);
    if (observer_ != nullptr) observer_->on_queued(seconds_since(pending.queued, started));
  }
  std::string error;
  bool invalid_input = false;
  try {
    std::vector<Prediction> predictions = pipeline.predict_encodings(
        std::move(inputs), texts, pairs, rows, 1, batch.front().request->submission.options);
    const size_t padded_tokens = pipeline.padded_length(longest) * rows;
    ++batches_;
    batched_inputs_ += batch.size();
    padded_tokens_ += padded_tokens;
    size_t largest = largest_batch_.load();
    while (batch.size() > largest && !largest_batch_.compare_exchange_weak(largest, batch.size())) {
    }
    if (observer_ != nullptr) {
      observer_->on_batch(batch.size(), padded_tokens,
                          seconds_since(started, std::chrono::steady_clock::now()));
    }
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

void RequestQueue::Impl::finish(Pending& pending, Prediction* prediction, const std::string& error,
                                bool invalid_input) {
  Request& request = *pending.request;
  std::function<void(QueueOutcome)> done;
  QueueOutcome outcome;
  {
    const std::lock_guard<std::mutex> lock(request.mutex);
    if (prediction != nullptr) {
      if (!request.submission.choices.empty()) {  // multiple-choice: name the choices
        const std::vector<std::string>& names = request.submission.choices[pending.index];
        for (size_t c = 0; c < prediction->choices.size() && c < names.size(); ++c) {
          prediction->choices[c].choice = names[c];
        }
      }
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

RequestQueue::RequestQueue(std::vector<const Pipeline*> pipelines, QueueOptions options,
                           QueueObserver* observer)
    : impl_(std::make_unique<Impl>(std::move(pipelines), options, observer)) {}

RequestQueue::RequestQueue(const Pipeline& pipeline, QueueOptions options, QueueObserver* observer)
    : RequestQueue(std::vector<const Pipeline*>{&pipeline}, options, observer) {}

RequestQueue::~RequestQueue() { impl_->stop(); }

void RequestQueue::submit(QueueSubmission submission) { impl_->submit(std::move(submission)); }

namespace {

// A submission answered through a future: predictions, or the error as InvalidInput / Error.
std::future<std::vector<Prediction>> answer_by_future(QueueSubmission& submission) {
  auto promise = std::make_shared<std::promise<std::vector<Prediction>>>();
  std::future<std::vector<Prediction>> answer = promise->get_future();
  submission.done = [promise](QueueOutcome outcome) {
    if (outcome.error.empty()) {
      promise->set_value(std::move(outcome.predictions));
    } else if (outcome.invalid_input) {
      promise->set_exception(std::make_exception_ptr(InvalidInput(outcome.error)));
    } else {
      promise->set_exception(std::make_exception_ptr(Error(outcome.error)));
    }
  };
  return answer;
}

}  // namespace

const Pipeline& RequestQueue::pipeline(size_t model) const {
  impl_->check_model(model);
  return *impl_->pipelines_[model];
}

std::future<std::vector<Prediction>> RequestQueue::submit(Texts texts, Texts pairs,
                                                          const TaskOptions& options, size_t model,
                                                          size_t batch_size) {
  const Pipeline& encoder = pipeline(model);
  if (!pairs.empty() && pairs.size() != texts.size()) {
    throw InvalidInput("got " + std::to_string(texts.size()) + " texts but " +
                       std::to_string(pairs.size()) + " pairs");
  }
  QueueSubmission submission;
  submission.model = model;
  submission.options = options;
  submission.batch_size = batch_size;
  submission.inputs.reserve(texts.size());
  submission.texts.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    std::optional<std::string_view> pair;
    if (!pairs.empty()) pair = pairs[i];
    try {
      submission.inputs.push_back(encoder.encode(texts[i], pair, options));
    } catch (const InvalidInput& error) {
      throw InvalidInput("text " + std::to_string(i) + ": " + error.what());
    }
    submission.texts.emplace_back(texts[i]);
    if (pair) submission.pairs.emplace_back(*pair);
  }
  std::future<std::vector<Prediction>> answer = answer_by_future(submission);
  impl_->submit(std::move(submission));
  return answer;
}

std::future<std::vector<Prediction>> RequestQueue::submit_choices(
    Texts texts, std::vector<std::vector<std::string>> choices, const TaskOptions& options,
    size_t model, size_t batch_size) {
  const Pipeline& owner = pipeline(model);
  if (choices.size() != texts.size()) {
    throw InvalidInput("got " + std::to_string(texts.size()) + " texts but " +
                       std::to_string(choices.size()) + " lists of choices");
  }
  owner.check(options);
  QueueSubmission submission;
  submission.model = model;
  submission.options = options;
  submission.batch_size = batch_size;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::vector<std::string_view> views(choices[i].begin(), choices[i].end());
    try {
      submission.inputs.push_back(owner.encoder().encode_choices(texts[i], views, options));
    } catch (const InvalidInput& error) {
      throw InvalidInput("text " + std::to_string(i) + ": " + error.what());
    }
    submission.texts.emplace_back(texts[i]);
  }
  submission.choices = std::move(choices);
  std::future<std::vector<Prediction>> answer = answer_by_future(submission);
  impl_->submit(std::move(submission));
  return answer;
}

void RequestQueue::run(std::function<void()> job) { impl_->run(std::move(job)); }

size_t RequestQueue::queue_depth() const { return impl_->queue_depth(); }

QueueStats RequestQueue::stats() const { return impl_->stats(); }

const QueueOptions& RequestQueue::options() const { return impl_->options_; }

void RequestQueue::stop() { impl_->stop(); }

}  // namespace tsrunner
