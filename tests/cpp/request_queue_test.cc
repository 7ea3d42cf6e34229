// RequestQueue: callers on many threads share batches, get their own answers in order, and a
// bad input fails only its own submission.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "test_paths.h"
#include "tsrunner/errors.h"
#include "tsrunner/request_queue.h"

namespace {

using tsrunner::Encoding;
using tsrunner::Pipeline;
using tsrunner::Prediction;
using tsrunner::QueueOptions;
using tsrunner::QueueOutcome;
using tsrunner::QueueSubmission;
using tsrunner::RequestQueue;
using tsrunner::Runner;
using tsrunner::testing::fixture;

Runner single_threaded_runner() {
  tsrunner::RunnerOptions options;
  options.threads = 1;
  return Runner(fixture("tiny_bert.pt"), options);
}

// Texts of one token count (a letter is one token), so that padding never splits a batch.
std::string text_of(size_t i) {
  return "caller number " + std::string(1, static_cast<char>('a' + i));
}

// Collects the batch sizes the queue reports.
class CountingObserver : public tsrunner::QueueObserver {
 public:
  void on_batch(size_t inputs, size_t, double) override {
    batches += 1;
    batched += inputs;
  }
  void on_queued(double) override { queued += 1; }
  void on_lone_batch() override {}
  std::atomic<size_t> batches{0}, batched{0}, queued{0};
};

TEST(RequestQueue, CallersOnManyThreadsShareBatchesAndGetTheirOwnAnswers) {
  const Runner runner = single_threaded_runner();
  const Pipeline pipeline(runner);
  constexpr size_t kCallers = 16;
  std::vector<Prediction> serial;
  for (size_t i = 0; i < kCallers; ++i) serial.push_back(pipeline.predict({text_of(i)}).at(0));

  CountingObserver observer;
  QueueOptions options;
  // Inputs wait up to 2 s for a full batch of 16, so all callers meet in one batch whatever the
  // machine's load; the deadline only matters if a caller never comes.
  options.max_wait = std::chrono::seconds(2);
  options.max_batch_requests = kCallers;
  RequestQueue queue(pipeline, options, &observer);
  std::vector<std::future<std::vector<Prediction>>> answers(kCallers);
  std::vector<std::thread> callers;
  for (size_t i = 0; i < kCallers; ++i) {
    callers.emplace_back([&, i] { answers[i] = queue.submit({text_of(i)}); });
  }
  for (std::thread& caller : callers) caller.join();
  for (size_t i = 0; i < kCallers; ++i) {
    const std::vector<Prediction> answer = answers[i].get();
    ASSERT_EQ(answer.size(), 1u);
    ASSERT_EQ(answer[0].embedding.size(), serial[i].embedding.size());
    for (size_t d = 0; d < answer[0].embedding.size(); ++d) {
      EXPECT_NEAR(answer[0].embedding[d], serial[i].embedding[d], 1e-5) << "caller " << i;
    }
  }
  const tsrunner::QueueStats stats = queue.stats();
  EXPECT_EQ(stats.submissions, kCallers);
  EXPECT_EQ(stats.inputs, kCallers);
  EXPECT_EQ(stats.batched_inputs, kCallers);
  EXPECT_LT(stats.batches, kCallers);  // batched, not one by one
  EXPECT_EQ(stats.largest_batch, kCallers);
  EXPECT_EQ(observer.batches.load(), stats.batches);
  EXPECT_EQ(observer.batched.load(), kCallers);
  EXPECT_EQ(observer.queued.load(), kCallers);
}

TEST(RequestQueue, WorkersKeepTheirIntraOpThreadCount) {
  // A server sets the process default to one thread while it loads (tsrun serve) and gives
  // each worker its own count: LibTorch's first look at a worker's count must not reset it.
  at::set_num_threads(1);
  Runner runner = single_threaded_runner();
  Pipeline pipeline(runner);
  QueueOptions options;
  options.intra_op_threads = 2;
  options.workers = 1;
  RequestQueue queue({&pipeline}, options);
  for (int call = 0; call < 2; ++call) {  // before and after a batch ran on the worker
    std::promise<int> seen;
    queue.run([&seen] { seen.set_value(at::get_num_threads()); });
    EXPECT_EQ(seen.get_future().get(), 2) << "call " << call;
    EXPECT_EQ(queue.submit({text_of(0)}).get().size(), 1u);
  }
}

TEST(RequestQueue, ABadInputFailsOnlyItsOwnSubmission) {
  const Runner runner = single_threaded_runner();
  const Pipeline pipeline(runner);
  QueueOptions options;
  options.max_wait = std::chrono::milliseconds(500);
  options.max_batch_requests = 3;
  RequestQueue queue(pipeline, options);
  std::vector<std::promise<QueueOutcome>> outcomes(3);
  for (size_t i = 0; i < 3; ++i) {
    QueueSubmission submission;
    submission.inputs.push_back(pipeline.encode(text_of(i)));
    if (i == 1) submission.inputs[0][0].ids[1] = 1'000'000;  // outside the vocabulary
    submission.done = [&outcomes, i](QueueOutcome outcome) {
      outcomes[i].set_value(std::move(outcome));
    };
    queue.submit(std::move(submission));
  }
  const QueueOutcome bad = outcomes[1].get_future().get();
  EXPECT_TRUE(bad.invalid_input);
  EXPECT_NE(bad.error.find("input 0: "), std::string::npos) << bad.error;
  EXPECT_NE(bad.error.find("1000000"), std::string::npos) << bad.error;
  for (size_t i : {0u, 2u}) {
    const QueueOutcome good = outcomes[i].get_future().get();
    EXPECT_EQ(good.error, "");
    ASSERT_EQ(good.predictions.size(), 1u);
    EXPECT_EQ(good.predictions[0].embedding, pipeline.predict({text_of(i)}).at(0).embedding);
  }
}

TEST(RequestQueue, TheFutureCarriesTheErrorOfTheInputAtFault) {
  const Runner runner = single_threaded_runner();
  const Pipeline pipeline(runner);
  RequestQueue queue(pipeline);
  // Options the export cannot honour are refused on the calling thread, before anything is
  // queued.
  tsrunner::TaskOptions options;
  options.max_answer_length = 0;
  EXPECT_THROW((void)queue.submit({"a"}, {}, options), tsrunner::InvalidInput);
  EXPECT_THROW((void)queue.submit({"a", "b"}, {"x"}), tsrunner::InvalidInput);
  EXPECT_THROW((void)queue.submit({"a"}, {}, {}, /*model=*/1), tsrunner::InvalidInput);
  EXPECT_EQ(queue.stats().submissions, 0u);
}

TEST(RequestQueue, SubmissionsAreCheckedAndRefusedAfterStop) {
  const Runner runner = single_threaded_runner();
  const Pipeline pipeline(runner);
  RequestQueue queue(pipeline);
  QueueSubmission no_callback;
  no_callback.inputs.push_back(pipeline.encode("a"));
  EXPECT_THROW(queue.submit(std::move(no_callback)), tsrunner::InvalidInput);
  QueueSubmission mismatched;
  mismatched.inputs.push_back(pipeline.encode("a"));
  mismatched.texts = {"a", "b"};
  mismatched.done = [](QueueOutcome) {};
  EXPECT_THROW(queue.submit(std::move(mismatched)), tsrunner::InvalidInput);

  // No inputs: answered at once, with no predictions.
  std::promise<QueueOutcome> empty;
  QueueSubmission nothing;
  nothing.done = [&empty](QueueOutcome outcome) { empty.set_value(std::move(outcome)); };
  queue.submit(std::move(nothing));
  EXPECT_TRUE(empty.get_future().get().predictions.empty());

  // What was queued before stop() is answered; later submissions are refused.
  std::future<std::vector<Prediction>> queued = queue.submit({"before stop"});
  queue.stop();
  EXPECT_EQ(queued.get().size(), 1u);
  EXPECT_THROW((void)queue.submit({"after stop"}), tsrunner::Error);
}

TEST(RequestQueue, ASubmissionsBatchSizeBoundsItsBatches) {
  const Runner runner = single_threaded_runner();
  const Pipeline pipeline(runner);
  RequestQueue queue(pipeline);
  std::vector<std::string> texts;
  for (size_t i = 0; i < 10; ++i) texts.push_back("the same length " + std::to_string(i % 10));
  const std::vector<Prediction> answers = queue.submit(texts, {}, {}, 0, /*batch_size=*/3).get();
  EXPECT_EQ(answers.size(), texts.size());
  EXPECT_EQ(queue.stats().largest_batch, 3u);
  EXPECT_EQ(queue.stats().batches, 4u);  // 3 + 3 + 3 + 1
}

}  // namespace
