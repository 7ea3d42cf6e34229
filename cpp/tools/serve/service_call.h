#pragma once

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "http_server.h"
#include "metrics.h"
#include "service.h"

namespace tsrunner::serve {

// How an error body is shaped: TEI's {"error", "error_type"}, TGI's (the same, its own
// error types), OpenAI's {"error": {...}} or the Open Inference Protocol's {"error"}.
enum class ErrorShape { kTei, kTgi, kOpenAI, kV2 };

// `param`: OpenAI's "param", the request field at fault (empty: null).
HttpResponse error_response(ErrorShape shape, int status, const std::string& message,
                            const std::string& param = "");

// Tokenizes one input with the request's task options (prompt, truncate); RequestError (422)
// when it is empty, not UTF-8, or too long for the model and `truncate` is off.
std::vector<Encoding> encode_input(const Pipeline& pipeline, const std::string& what,
                                   const std::string& text, const std::optional<std::string>& pair,
                                   const TaskOptions& options);

// /predict's answer for a text-classification input: [{"score", "label"}, ...], best first.
std::string scores_json(const std::vector<LabelScore>& labels);

// `count`, or RequestError (422) when it is over `limit` (--max-client-batch-size).
size_t check_batch_size(size_t count, size_t limit);

// One request being answered: records its metrics and releases its admission when answered.
struct Service::Call {
  // `route_pattern`: the route the path belongs to ("/v2/models/{name}/infer").
  Call(Service& owner, HttpRequest&& http_request, Respond respond_to, std::string route_pattern)
      : service(owner),
        request(std::move(http_request)),
        respond(std::move(respond_to)),
        route(std::move(route_pattern)),
        started(std::chrono::steady_clock::now()) {
    if (route.rfind("/v1/", 0) == 0) shape = ErrorShape::kOpenAI;
    if (route.rfind("/generate", 0) == 0) shape = ErrorShape::kTgi;
    if (route.rfind("/v2", 0) == 0) shape = ErrorShape::kV2;
  }

  void answer(HttpResponse response) {
    if (answered.exchange(true)) return;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    service.metrics_.observe_request(route, response.status, seconds);
    if (admitted) --service.model_requests_;
    respond(std::move(response));
  }
  void answer_json(std::string body) { answer({200, "application/json", std::move(body), {}}); }
  void fail(int status, const std::string& message) {
    answer(error_response(shape, status, message));
  }

  Service& service;
  HttpRequest request;
  Respond respond;
  std::string route;
  std::chrono::steady_clock::time_point started;
  ErrorShape shape = ErrorShape::kTei;
  bool admitted = false;
  std::atomic<bool> answered{false};
};

}  // namespace tsrunner::serve
