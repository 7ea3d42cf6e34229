// ThreadPool: many callers at once, a failing call reaches only its caller, nothing deadlocks.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tsrunner/errors.h"
#include "tsrunner/thread_pool.h"

namespace {

using tsrunner::ThreadPool;

TEST(ThreadPool, ManyCallersEachGetTheirOwnResultsAndOnlyTheFailingOneThrows) {
  ThreadPool pool(3);
  constexpr size_t kCallers = 16, kCount = 200, kFailing = 5;
  std::vector<std::vector<size_t>> results(kCallers, std::vector<size_t>(kCount, 0));
  std::vector<std::string> errors(kCallers);
  std::vector<std::thread> callers;
  for (size_t c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      try {
        pool.parallel_for(kCount, 4, 1, [&, c](size_t i) {
          if (c == kFailing && i == 77) throw std::runtime_error("batch 77 failed");
          results[c][i] += c * 1000 + i;  // every index exactly once: += shows a repeat
        });
      } catch (const std::exception& error) {
        errors[c] = error.what();
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  for (size_t c = 0; c < kCallers; ++c) {
    if (c == kFailing) {
      EXPECT_EQ(errors[c], "batch 77 failed");
      continue;
    }
    EXPECT_EQ(errors[c], "") << "caller " << c;
    for (size_t i = 0; i < kCount; ++i) ASSERT_EQ(results[c][i], c * 1000 + i) << c << ", " << i;
  }
  EXPECT_EQ(pool.workers(), 3u);  // the workers were reused, none added per call
}

TEST(ThreadPool, AFailureStopsTheCallAfterTheRunningIndices) {
  ThreadPool pool(2);
  std::atomic<size_t> started{0};
  // 1 ms per index: run to the end, the call would start all 10,000 and take over 3 s.
  EXPECT_THROW(pool.parallel_for(10'000, 3, 0,
                                 [&](size_t i) {
                                   ++started;
                                   if (i == 3) throw tsrunner::InvalidInput("bad input 3");
                                   std::this_thread::sleep_for(std::chrono::milliseconds(1));
                                 }),
               tsrunner::InvalidInput);
  EXPECT_LT(started.load(), 1'000u);
  // The pool is still usable.
  std::atomic<size_t> sum{0};
  pool.parallel_for(100, 3, 0, [&](size_t i) { sum += i; });
  EXPECT_EQ(sum.load(), 4950u);
}

TEST(ThreadPool, FinishesWhenEveryWorkerIsBusyOrTheQueueIsFull) {
  ThreadPool pool(1, /*queue_capacity=*/1);
  std::mutex mutex;
  std::condition_variable released;
  bool release = false;
  // Occupy the only worker, then fill the queue.
  auto blocker = pool.try_submit([&] {
    std::unique_lock<std::mutex> lock(mutex);
    released.wait(lock, [&] { return release; });
  });
  ASSERT_TRUE(blocker.has_value());
  std::optional<std::future<void>> queued;
  for (int attempt = 0; attempt < 1000 && !queued; ++attempt) {
    queued = pool.try_submit([] {});  // succeeds once the worker took the blocker
    if (!queued) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_TRUE(queued.has_value());
  EXPECT_FALSE(pool.try_submit([] {}).has_value());  // full: refused at once, not blocked
  std::atomic<size_t> done{0};
  pool.parallel_for(50, 8, 0, [&](size_t) { ++done; });  // the caller does it all itself
  EXPECT_EQ(done.load(), 50u);
  {
    const std::lock_guard<std::mutex> lock(mutex);
    release = true;
  }
  released.notify_all();
  blocker->get();
  queued->get();
}

TEST(ThreadPool, SubmittedTasksReportTheirExceptionsThroughTheFuture) {
  ThreadPool pool(2);
  auto failing = pool.try_submit([] { throw tsrunner::Error("task failed"); });
  ASSERT_TRUE(failing.has_value());
  EXPECT_THROW(failing->get(), tsrunner::Error);
  auto fine = pool.try_submit([] {});
  ASSERT_TRUE(fine.has_value());
  fine->get();
}

TEST(ThreadPool, CallsFromAWorkerDoNotDeadlock) {
  ThreadPool pool(1);
  std::atomic<size_t> inner{0};
  auto outer = pool.try_submit([&] { pool.parallel_for(20, 4, 0, [&](size_t) { ++inner; }); });
  ASSERT_TRUE(outer.has_value());
  outer->get();
  EXPECT_EQ(inner.load(), 20u);
}

TEST(ThreadPool, GrowsOnlyWhenAskedAndShutsDownWithQueuedWork) {
  std::atomic<size_t> ran{0};
  {
    ThreadPool pool;
    EXPECT_EQ(pool.workers(), 0u);
    pool.reserve(2);
    pool.reserve(1);
    EXPECT_EQ(pool.workers(), 2u);
    for (int i = 0; i < 100; ++i) (void)pool.try_submit([&] { ++ran; });
  }  // the destructor runs what was queued, then joins
  EXPECT_EQ(ran.load(), 100u);
  EXPECT_THROW(ThreadPool(1, 0), tsrunner::InvalidInput);
}

}  // namespace
