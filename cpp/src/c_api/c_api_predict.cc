// The C API's text-in, answer-out call (Pipeline::predict) and its predictions handle.

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "c_api/handles.h"
#include "tsrunner/prediction_json.h"

using tsrunner::c_api::guarded;
using tsrunner::c_api::require;
using tsrunner::c_api::require_pointer;
using tsrunner::c_api::text_argument;

namespace {

constexpr size_t kDefaultBatchSize = 32;

const tsrunner::Pipeline& pipeline_of(const tsr_runner& handle) {
  auto& runner = const_cast<tsr_runner&>(handle);  // the cache is not the runner's state
  const std::lock_guard<std::mutex> lock(runner.pipeline_mutex);
  if (!runner.pipeline) runner.pipeline = std::make_unique<tsrunner::Pipeline>(runner.runner);
  return *runner.pipeline;
}

// `count` texts from C arrays, as views of the caller's memory (Pipeline::predict copies
// nothing): lengths given, or NUL-terminated when `lengths` is NULL.
std::vector<std::string_view> texts_argument(const char* const* texts, const size_t* lengths,
                                             size_t count, const char* function,
                                             const char* argument) {
  std::vector<std::string_view> out;
  if (count == 0) return out;
  require_pointer(texts, function, argument);
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const std::string name = std::string(argument) + "[" + std::to_string(i) + "]";
    if (lengths == nullptr) {
      require_pointer(texts[i], function, name.c_str());
      out.emplace_back(texts[i]);
    } else {
      out.emplace_back(text_argument(texts[i], lengths[i], function, name.c_str()));
    }
  }
  return out;
}

const tsrunner::Prediction& prediction_at(const tsr_predictions* predictions, size_t index,
                                          const char* function) {
  require_pointer(predictions, function, "predictions");
  require(index < predictions->predictions.size(), function,
          "index " + std::to_string(index) + " is out of range (" +
              std::to_string(predictions->predictions.size()) + " predictions)");
  return predictions->predictions[index];
}

}  // namespace

extern "C" {

tsr_status tsr_runner_predict(const tsr_runner* runner, const char* const* texts,
                              const size_t* text_lengths, size_t count, const char* const* pairs,
                              const size_t* pair_lengths, size_t batch_size, tsr_predictions** out,
                              tsr_error** error) {
  constexpr const char* function = "tsr_runner_predict";
  return guarded(error, [&] {
    require_pointer(out, function, "out");
    *out = nullptr;
    require_pointer(runner, function, "runner");
    const std::vector<std::string_view> text_list =
        texts_argument(texts, text_lengths, count, function, "texts");
    std::vector<std::string_view> pair_list;
    if (pairs != nullptr) {
      pair_list = texts_argument(pairs, pair_lengths, count, function, "pairs");
    } else {
      require(pair_lengths == nullptr, function, "pair_lengths is given but pairs is NULL");
    }
    auto result = std::make_unique<tsr_predictions>();
    result->predictions = pipeline_of(*runner).predict(
        text_list, pair_list, batch_size == 0 ? kDefaultBatchSize : batch_size);
    result->item_json.reserve(result->predictions.size());
    for (const tsrunner::Prediction& prediction : result->predictions) {
      result->item_json.push_back(tsrunner::prediction_to_json(prediction));
    }
    result->array_json = tsrunner::predictions_to_json(result->predictions);
    *out = result.release();
  });
}

void tsr_predictions_free(tsr_predictions* predictions) { delete predictions; }

size_t tsr_predictions_count(const tsr_predictions* predictions) {
  return predictions == nullptr ? 0 : predictions->predictions.size();
}

const char* tsr_predictions_json(const tsr_predictions* predictions) {
  return predictions == nullptr ? nullptr : predictions->array_json.c_str();
}

tsr_status tsr_predictions_item_json(const tsr_predictions* predictions, size_t index,
                                     const char** json, tsr_error** error) {
  constexpr const char* function = "tsr_predictions_item_json";
  return guarded(error, [&] {
    require_pointer(json, function, "json");
    *json = nullptr;
    prediction_at(predictions, index, function);
    *json = predictions->item_json[index].c_str();
  });
}

tsr_status tsr_predictions_embedding(const tsr_predictions* predictions, size_t index,
                                     const float** data, size_t* dimension, tsr_error** error) {
  constexpr const char* function = "tsr_predictions_embedding";
  return guarded(error, [&] {
    require_pointer(data, function, "data");
    require_pointer(dimension, function, "dimension");
    *data = nullptr;
    *dimension = 0;
    const tsrunner::Prediction& prediction = prediction_at(predictions, index, function);
    require(prediction.task == tsrunner::Task::kFeatureExtraction, function,
            "prediction " + std::to_string(index) + " has no embedding (task " +
                std::string(tsrunner::task_name(prediction.task)) + ")");
    *data = prediction.embedding.data();
    *dimension = prediction.embedding.size();
  });
}

}  // extern "C"
