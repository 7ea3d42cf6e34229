#include "service.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>

#include "json_text.h"
#include "metrics.h"
#include "request_parsing.h"
#include "service_call.h"
#include "tsrunner/errors.h"
#include "tsrunner/prediction_json.h"
#include "tsrunner/request_queue.h"

namespace tsrunner::serve {
namespace {

const char* tei_error_type(int status) {
  switch (status) {
    case 401:
      return "Unauthorized";
    case 404:
    case 405:
      return "NotFound";
    case 424:
    case 500:
      return "Backend";
    case 429:
      return "Overloaded";
    case 503:
      return "Unhealthy";
    default:
      return "Validation";
  }
}

// The route pattern a path belongs to (the metrics label; never the raw path).
std::string route_of(const std::string& path) {
  static const char* const kRoutes[] = {"/embed",
                                        "/predict",
                                        "/rerank",
                                        "/tokenize",
                                        "/health",
                                        "/info",
                                        "/metrics",
                                        "/v1/embeddings",
                                        "/v2",
                                        "/v2/health/live",
                                        "/v2/health/ready",
                                        "/v1/completions",
                                        "/v1/chat/completions",
                                        "/generate",
                                        "/generate_stream"};
  for (const char* route : kRoutes) {
    if (path == route) return route;
  }
  if (path.rfind("/v2/models/", 0) == 0) {
    if (path.size() > 6 && path.compare(path.size() - 6, 6, "/infer") == 0) {
      return "/v2/models/{name}/infer";
    }
    if (path.size() > 6 && path.compare(path.size() - 6, 6, "/ready") == 0) {
      return "/v2/models/{name}/ready";
    }
    return "/v2/models/{name}";
  }
  return "other";
}

bool is_health_route(const std::string& route) {
  return route == "/health" || route == "/v2/health/live" || route == "/v2/health/ready";
}

// Compares without stopping at the first difference (the key's bytes leak no timing).
bool same_secret(std::string_view a, std::string_view b) {
  unsigned char difference = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) difference |= a[i] ^ b[i % std::max<size_t>(b.size(), 1)];
  return difference == 0;
}

}  // namespace

HttpResponse error_response(ErrorShape shape, int status, const std::string& message,
                            const std::string& param) {
  std::string body;
  if (shape == ErrorShape::kOpenAI) {
    const char* type = status == 429   ? "rate_limit_error"
                       : status == 401 ? "authentication_error"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    body = "{\"error\":{\"message\":";
    append_string(body, message);
    body += ",\"type\":\"" + std::string(type) + "\",\"param\":";
    if (param.empty()) {
      body += "null";
    } else {
      append_string(body, param);
    }
    body += std::string(",\"code\":") + (status == 404 ? "\"model_not_found\"" : "null") + "}}";
  } else {
    body = "{\"error\":";
    append_string(body, message);
    if (shape == ErrorShape::kTei)
      body += ",\"error_type\":\"" + std::string(tei_error_type(status)) + "\"";
    if (shape == ErrorShape::kTgi) {
      body += std::string(",\"error_type\":\"") +
              (status == 429   ? "overloaded"
               : status >= 500 ? "generation"
                               : "validation") +
              "\"";
    }
    body += "}";
  }
  HttpResponse response{status, "application/json", std::move(body), {}};
  if (status == 401) response.headers.emplace_back("WWW-Authenticate", "Bearer");
  return response;
}

Service::Service(std::vector<ServedModel>& models, RequestQueue& queue, Metrics& metrics,
                 ServiceLimits limits, std::string info_json)
    : models_(models),
      queue_(queue),
      metrics_(metrics),
      limits_(std::move(limits)),
      info_json_(std::move(info_json)),
      jobs_(metrics) {}

void Service::handle(HttpRequest&& request, Respond respond) {
  std::string route_pattern = route_of(request.path);
  auto call = std::make_shared<Call>(*this, std::move(request), std::move(respond),
                                     std::move(route_pattern));
  try {
    if (shutting_down_) return call->fail(503, "the server is shutting down");
    if (!limits_.api_key.empty() && !is_health_route(call->route) &&
        !same_secret(call->request.header("authorization"), "Bearer " + limits_.api_key)) {
      return call->fail(401, "missing or wrong API key (Authorization: Bearer <key>)");
    }
    route(call);
  } catch (const RequestError& error) {
    call->fail(error.status, error.what());
  } catch (const std::exception& error) {
    call->fail(500, error.what());
  }
}

bool Service::admit(const std::shared_ptr<Call>& call) {
  if (++model_requests_ > limits_.max_concurrent_requests) {
    --model_requests_;
    call->fail(429, "Model is overloaded: " + std::to_string(limits_.max_concurrent_requests) +
                        " requests are running (--max-concurrent-requests)");
    return false;
  }
  call->admitted = true;
  return true;
}

ServedModel* Service::find_model(const std::string& name) {
  for (ServedModel& model : models_) {
    if (model.name == name) return &model;
  }
  return nullptr;
}

void Service::route(const std::shared_ptr<Call>& call) {
  const std::string& route = call->route;
  const std::string& method = call->request.method;
  if (route.rfind("/v2", 0) == 0) return v2(call);
  const bool get = method == "GET" || method == "HEAD";
  if (route == "/health") {
    if (!get) return call->fail(405, "use GET " + route);
    return call->answer({200, "application/json", "", {}});
  }
  if (route == "/info") return get ? info(call) : call->fail(405, "use GET " + route);
  if (route == "/metrics") return get ? metrics(call) : call->fail(405, "use GET " + route);
  if (route == "other") return call->fail(404, "no route " + call->request.path);
  if (method != "POST") return call->fail(405, "use POST " + route);
  if (route == "/tokenize") return tokenize(call);
  if (route == "/v1/completions") return completions(call);
  if (route == "/v1/chat/completions") return chat_completions(call);
  if (route == "/generate" || route == "/generate_stream") {
    return tgi_generate(call, route == "/generate_stream");
  }
  // The model routes parse and check the request first (a malformed one is a 400 or 422
  // whatever the load), then admit() it before tokenizing.
  if (route == "/embed") return embed(call);
  if (route == "/predict") return predict(call);
  if (route == "/rerank") return rerank(call);
  return openai_embeddings(call);
}

void Service::info(const std::shared_ptr<Call>& call) { call->answer_json(info_json_); }

void Service::metrics(const std::shared_ptr<Call>& call) {
  call->answer({200,
                "text/plain; version=0.0.4",
                metrics_.prometheus(queue_.queue_depth(), model_requests_),
                {}});
}

}  // namespace tsrunner::serve
