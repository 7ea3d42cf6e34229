// Issue 28: no memory error through the public API, lifetimes that are safe, and thread counts
// that belong to their runner.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "intra_op_threads.h"
#include "test_paths.h"
#include "tsrunner/errors.h"
#include "tsrunner/example_inputs.h"
#include "tsrunner/pipeline.h"
#include "tsrunner/testing.h"

namespace {

using tsrunner::Encoding;
using tsrunner::Pipeline;
using tsrunner::Runner;
using tsrunner::RunnerOptions;
using tsrunner::TensorMap;
using tsrunner::Tokenizer;
using tsrunner::testing::fixture;

Runner load(int threads = 1) {
  RunnerOptions options;
  options.threads = threads;
  return Runner(fixture("tiny_bert.pt"), options);
}

// The message of the tsrunner::InvalidInput `call` throws ("" when it throws none).
std::string invalid_input_message(const std::function<void()>& call) {
  try {
    call();
  } catch (const tsrunner::InvalidInput& error) {
    return error.what();
  }
  return "";
}

// One encoding field made longer or shorter than the ids (the heap overflow of issue 28).
struct Mangle {
  const char* field;
  std::function<void(Encoding&, bool longer)> apply;
};

std::vector<Mangle> manglers() {
  auto resize = [](auto& values, bool longer) {
    values.resize(longer ? values.size() + 1000 : values.size() - 1);
  };
  return {
      {"type_ids", [=](Encoding& e, bool longer) { resize(e.type_ids, longer); }},
      {"attention_mask",
       [=](Encoding& e, bool longer) {
         resize(e.attention_mask, longer);
         for (int64_t& bit : e.attention_mask) bit = 1;
       }},
      {"tokens", [=](Encoding& e, bool longer) { resize(e.tokens, longer); }},
      {"offsets", [=](Encoding& e, bool longer) { resize(e.offsets, longer); }},
      {"sequence_ids",
       [=](Encoding& e, bool longer) {
         resize(e.sequence_ids, longer);
         for (int& id : e.sequence_ids) id = 0;
       }},
      {"word_ids", [=](Encoding& e, bool longer) { resize(e.word_ids, longer); }},
  };
}

TEST(SdkSafety, PredictEncodingsRefusesAFieldLongerOrShorterThanTheIds) {
  const Runner runner = load();
  const Pipeline pipeline(runner);
  for (const Mangle& mangle : manglers()) {
    for (bool longer : {true, false}) {
      std::vector<std::vector<Encoding>> inputs = {{pipeline.encode("a short text")},
                                                   {pipeline.encode("another one, longer")}};
      mangle.apply(inputs[1][0], longer);
      const std::string message =
          invalid_input_message([&] { (void)pipeline.predict_encodings(inputs, {}, {}, 2); });
      EXPECT_NE(message.find("input 1: " + std::string(mangle.field) + " has"), std::string::npos)
          << mangle.field << (longer ? " longer: " : " shorter: ") << message;
    }
  }
}

TEST(SdkSafety, PredictEncodedRefusesMalformedEncodings) {
  const Runner runner = load();
  const Pipeline pipeline(runner);
  for (const Mangle& mangle : manglers()) {
    std::vector<Encoding> batch = {pipeline.tokenizer().encode("one text")};
    mangle.apply(batch[0], true);
    const std::string message =
        invalid_input_message([&] { (void)pipeline.predict_encoded(batch); });
    EXPECT_NE(message.find("encoding 0: " + std::string(mangle.field)), std::string::npos)
        << message;
  }
  // Rows of different lengths, and texts that are not one per encoding.
  std::vector<Encoding> ragged = {pipeline.tokenizer().encode("one"),
                                  pipeline.tokenizer().encode("one two three four")};
  EXPECT_THROW((void)pipeline.predict_encoded(ragged), tsrunner::InvalidInput);
  std::vector<Encoding> batch = {pipeline.tokenizer().encode("one")};
  EXPECT_NE(invalid_input_message([&] {
              (void)pipeline.predict_encoded(batch, {"a", "b"});
            }).find("got 2 texts for 1 inputs"),
            std::string::npos);
}

TEST(SdkSafety, EncodingValuesOutOfTheirDomainAreRefused) {
  const Runner runner = load();
  const Pipeline pipeline(runner);
  const Encoding good = pipeline.tokenizer().encode("values are checked too");
  auto refused = [&](const std::function<void(Encoding&)>& change, const std::string& expected) {
    std::vector<std::vector<Encoding>> inputs = {{good}};
    change(inputs[0][0]);
    const std::string message =
        invalid_input_message([&] { (void)pipeline.predict_encodings(inputs, {}, {}, 1); });
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  };
  refused([](Encoding& e) { e.attention_mask[1] = 2; }, "attention_mask[1] is 2");
  refused([](Encoding& e) { e.sequence_ids[2] = 7; }, "sequence_ids[2] is 7");
  refused([](Encoding& e) { e.offsets[1] = {9, 3}; }, "offsets[1] begins at 9");
  refused([](Encoding& e) { e = Encoding(); }, "input 0 has no tokens");
  refused([](Encoding& e) { e.ids[1] = 1'000'000; }, "outside the valid range");
  // Texts must be none or one per input.
  std::vector<std::vector<Encoding>> inputs = {{good}, {good}};
  EXPECT_NE(invalid_input_message([&] {
              (void)pipeline.predict_encodings(inputs, {}, {"only one pair"}, 2);
            }).find("got 1 pairs for 2 inputs"),
            std::string::npos);
}

TEST(SdkSafety, EncodingFromIdsRunsLikeTheTokenizersEncoding) {
  const Runner runner = load();
  const Pipeline pipeline(runner);
  const Encoding tokenized = pipeline.tokenizer().encode("pre-tokenized ids are first class");
  const Encoding from_ids = Encoding::from_ids(tokenized.ids, tokenized.type_ids);
  EXPECT_NO_THROW(from_ids.validate());
  const auto answers = pipeline.predict_encodings({{tokenized}, {from_ids}}, {}, {}, 1);
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[0].embedding, answers[1].embedding);
  EXPECT_THROW((void)Encoding::from_ids({1, 2, 3}, {0, 0}), tsrunner::InvalidInput);
}

TEST(SdkSafety, RunTakesDenseTensorsOfAnyStrideAndRefusesTheRest) {
  const Runner runner = load();
  const TensorMap inputs = tsrunner::make_example_inputs(runner.manifest(), 2, 6);
  const TensorMap expected = runner.run(inputs);
  // A transposed (non-contiguous) view of the same ids answers the same.
  TensorMap strided = inputs;
  strided["input_ids"] = inputs.at("input_ids").t().contiguous().t();
  ASSERT_FALSE(strided.at("input_ids").is_contiguous());
  const TensorMap answer = runner.run(strided);
  for (const auto& [name, tensor] : expected) EXPECT_TRUE(answer.at(name).equal(tensor)) << name;

  TensorMap sparse = inputs;
  sparse["input_ids"] = inputs.at("input_ids").to_sparse();
  EXPECT_NE(invalid_input_message([&] {
              (void)runner.run(sparse);
            }).find("input \"input_ids\" is a Sparse tensor; pass a dense (strided) one"),
            std::string::npos);
  TensorMap meta = inputs;
  meta["attention_mask"] =
      at::empty({2, 6}, at::TensorOptions().dtype(at::kLong).device(at::kMeta));
  EXPECT_NE(invalid_input_message([&] {
              (void)runner.run(meta);
            }).find("input \"attention_mask\" is a meta tensor"),
            std::string::npos);
}

TEST(SdkSafety, TokenizerRefusesAPaddingLengthItCannotAllocate) {
  const Tokenizer tokenizer = Tokenizer::from_file(fixture("tiny_bert.pt"));
  std::vector<Encoding> encodings = {tokenizer.encode("text")};
  const size_t absurd = size_t{1} << 62;  // was std::length_error / bad_alloc
  EXPECT_NE(invalid_input_message([&] {
              tokenizer.pad(encodings, absurd);
            }).find("cannot pad to 4611686018427387904 tokens"),
            std::string::npos);
  EXPECT_THROW((void)tokenizer.encode_batch({"text"}, {}, absurd), tsrunner::InvalidInput);
  tokenizer.pad(encodings, 9);
  EXPECT_EQ(encodings[0].size(), 9u);
  EXPECT_NO_THROW(encodings[0].validate());
}

TEST(SdkSafety, MovedFromObjectsThrowInsteadOfCrashing) {
  Runner runner = load();
  const TensorMap inputs = tsrunner::make_example_inputs(runner.manifest(), 1, 4);
  const Runner moved_to = std::move(runner);
  EXPECT_EQ(moved_to.run(inputs).size(), moved_to.manifest().outputs.size());
  auto expect_moved = [](const std::function<void()>& call, const std::string& type) {
    try {
      call();
      ADD_FAILURE() << "no error from a moved-from " << type;
    } catch (const tsrunner::Error& error) {
      EXPECT_EQ(std::string(error.what()), "tsrunner::" + type + " used after move");
    }
  };
  expect_moved([&] { (void)runner.run(inputs); }, "Runner");  // NOLINT(bugprone-use-after-move)
  expect_moved([&] { (void)runner.manifest(); }, "Runner");
  expect_moved([&] { (void)runner.options(); }, "Runner");
  expect_moved([&] { (void)runner.kernel_path(); }, "Runner");
  expect_moved([&] { (void)runner.tokenizer(); }, "Runner");
  expect_moved([&] { (void)Pipeline(runner); }, "Runner");

  Tokenizer tokenizer = Tokenizer::from_file(fixture("tiny_bert.pt"));
  const Tokenizer other = std::move(tokenizer);
  EXPECT_FALSE(other.encode("still works").ids.empty());
  expect_moved([&] { (void)tokenizer.encode("x"); }, "Tokenizer");
  expect_moved([&] { (void)tokenizer.decode({1, 2}); }, "Tokenizer");
  expect_moved([&] { (void)tokenizer.pad_id(); }, "Tokenizer");

  Pipeline pipeline(moved_to);
  const Pipeline pipeline_moved_to = std::move(pipeline);
  EXPECT_EQ(pipeline_moved_to.predict({"fine"}).size(), 1u);
  expect_moved([&] { (void)pipeline.predict({"x"}); }, "Pipeline");
  expect_moved([&] { (void)pipeline.encode("x"); }, "Pipeline");
  expect_moved([&] { (void)pipeline.tokenizer(); }, "Pipeline");
}

// Blocks every Runner::run inside the model call until released.
class RunGate {
 public:
  RunGate() {
    tsrunner::testing::set_run_hook([this] {
      std::unique_lock<std::mutex> lock(mutex_);
      ++entered_;
      changed_.notify_all();
      changed_.wait(lock, [this] { return open_; });
    });
  }
  ~RunGate() { tsrunner::testing::set_run_hook(nullptr); }
  void wait_for_entries(int count) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return entered_ >= count; });
  }
  void open() {
    const std::lock_guard<std::mutex> lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int entered_ = 0;
  bool open_ = false;
};

TEST(SdkSafety, DestroyingARunnerWaitsForItsCallsInFlight) {
  auto runner = std::make_unique<Runner>(load());
  const TensorMap inputs = tsrunner::make_example_inputs(runner->manifest(), 2, 8);
  const TensorMap expected = runner->run(inputs);
  RunGate gate;
  TensorMap answers[2];
  std::vector<std::thread> callers;
  for (TensorMap& answer : answers) {
    callers.emplace_back([&, runner_ptr = runner.get()] { answer = runner_ptr->run(inputs); });
  }
  gate.wait_for_entries(2);  // both calls are inside the model now
  std::atomic<bool> destroyed{false};
  std::thread destroyer([&] {
    runner.reset();
    destroyed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(destroyed) << "the runner was destroyed under two calls in flight";
  gate.open();
  for (std::thread& caller : callers) caller.join();
  destroyer.join();
  EXPECT_TRUE(destroyed);
  for (const TensorMap& answer : answers) {
    ASSERT_EQ(answer.size(), expected.size());
    for (const auto& [name, tensor] : expected) EXPECT_TRUE(answer.at(name).equal(tensor)) << name;
  }
}

TEST(SdkSafety, EachRunnerRunsWithItsOwnThreadCount) {
  using tsrunner::detail::intra_op_threads;
  auto fresh_thread_count = [] {
    int count = 0;
    std::thread([&] { count = at::get_num_threads(); }).join();
    return count;
  };
  const int default_for_new_threads = fresh_thread_count();
  tsrunner::detail::set_intra_op_threads(3);
  const Runner one = load(1);
  const Runner two = load(2);  // loading a second runner leaves the first (and this thread) alone
  EXPECT_EQ(intra_op_threads(), 3);
  EXPECT_EQ(fresh_thread_count(), default_for_new_threads);
  EXPECT_EQ(one.options().threads, 1);
  EXPECT_EQ(two.options().threads, 2);

  std::vector<int> seen;
  tsrunner::testing::set_run_hook([&] { seen.push_back(intra_op_threads()); });
  const TensorMap inputs = tsrunner::make_example_inputs(one.manifest(), 1, 8);
  (void)one.run(inputs);
  (void)two.run(inputs);
  (void)one.run(inputs);
  std::thread([&] { (void)two.run(inputs); }).join();  // any calling thread
  tsrunner::testing::set_run_hook(nullptr);
  EXPECT_EQ(seen, (std::vector<int>{1, 2, 1, 2}));
  EXPECT_EQ(intra_op_threads(), 3) << "a run left its count on the calling thread";
  EXPECT_EQ(fresh_thread_count(), default_for_new_threads);
}

}  // namespace
