#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "generation_job.h"
#include "http_server.h"
#include "tsrunner/generator.h"
#include "tsrunner/pipeline.h"
#include "tsrunner/request_queue.h"
#include "tsrunner/runner.h"

namespace tsrunner::serve {

class Metrics;
struct V2InferRequest;

// One model the server answers for.
struct ServedModel {
  std::string name;  // in URLs and the OpenAI "model" field
  std::string path;
  std::unique_ptr<Runner> runner;
  // Null when the export's task has no task-aware output: then only the Open Inference
  // Protocol routes (raw tensors) serve it.
  std::unique_ptr<Pipeline> pipeline;
  // Set for a generation export (manifest "generation"): the generation routes use it, the
  // encoder routes refuse the model.
  std::unique_ptr<Generator> generator;
};

struct ServiceLimits {
  size_t max_concurrent_requests = 512;  // model requests at once; more: 429 at once
  size_t max_client_batch_size = 32;     // inputs in one request; more: 422
  std::string api_key;                   // when set: "Authorization: Bearer <key>" on every
                                         // route but the health checks
};

// The routes: text-embeddings-inference's (/embed, /predict, /rerank, /tokenize, /health,
// /info, /metrics), OpenAI's /v1/embeddings and the Open Inference Protocol v2 (/v2/...); for
// generation exports OpenAI's /v1/completions and text-generation-inference's /generate and
// /generate_stream.
// Requests are parsed and tokenized on the HTTP threads; model work goes to the library's
// RequestQueue.
class Service {
 public:
  Service(std::vector<ServedModel>& models, RequestQueue& queue, Metrics& metrics,
          ServiceLimits limits, std::string info_json);

  void handle(HttpRequest&& request, Respond respond);
  // From now on every request is answered 503 (requests already taken finish).
  void begin_shutdown() { shutting_down_ = true; }
  // Model requests taken and not yet answered.
  size_t model_requests_in_flight() const { return model_requests_; }
  // Blocks until every generation request has answered (after the generators were destroyed,
  // or their work finished).
  void wait_for_generations() { jobs_.wait_idle(); }

 private:
  struct Call;  // one request being answered (service_call.h)

  void route(const std::shared_ptr<Call>& call);
  // The text routes: TEI's and OpenAI's embeddings (service_text.cc).
  void embed(const std::shared_ptr<Call>& call);
  void predict(const std::shared_ptr<Call>& call);
  void rerank(const std::shared_ptr<Call>& call);
  void tokenize(const std::shared_ptr<Call>& call);
  void openai_embeddings(const std::shared_ptr<Call>& call);
  // Status routes (service.cc).
  void info(const std::shared_ptr<Call>& call);
  void metrics(const std::shared_ptr<Call>& call);
  // Open Inference Protocol v2 (service_v2.cc).
  void v2(const std::shared_ptr<Call>& call);
  void v2_infer(const std::shared_ptr<Call>& call, ServedModel& model);
  // Generation (service_completions.cc, service_tgi.cc).
  void completions(const std::shared_ptr<Call>& call);
  void chat_completions(const std::shared_ptr<Call>& call);
  void tgi_generate(const std::shared_ptr<Call>& call, bool stream);
  // The model a generation route serves (`name`, or the first); RequestError (404, or 400/422
  // naming the routes that do serve it) when there is none or it does not generate.
  ServedModel& generation_model(const std::shared_ptr<Call>& call, const std::string& name);
  // Prompt token ids of text prompts; RequestError when the model has no tokenizer.
  std::vector<std::vector<int64_t>> encode_prompts(const std::shared_ptr<Call>& call,
                                                   const ServedModel& model,
                                                   const std::vector<std::string>& texts);
  // A request whose inputs are text (BYTES tensors; service_v2_text.cc).
  void v2_infer_text(const std::shared_ptr<Call>& call, ServedModel& model,
                     std::shared_ptr<V2InferRequest> request);

  ServedModel* find_model(const std::string& name);
  // The model work of a request may start: false (and 429 answered) when too many are running.
  bool admit(const std::shared_ptr<Call>& call);

  std::vector<ServedModel>& models_;
  RequestQueue& queue_;
  Metrics& metrics_;
  ServiceLimits limits_;
  std::string info_json_;
  std::atomic<bool> shutting_down_{false};
  std::atomic<size_t> model_requests_{0};
  GenerationJobs jobs_;
};

// The routes that serve a model of this kind (for the error a wrong route answers): "/v1/
// completions, /generate or /generate_stream" for a generation export, "/v1/embeddings or /embed"
// for an embedding model, and so on.
std::string routes_for(const ServedModel& model);

}  // namespace tsrunner::serve
