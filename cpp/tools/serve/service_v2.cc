// The Open Inference Protocol v2 routes (what Triton's and KServe's clients speak): raw tensors
// in and out, checked against the manifest by Runner::run.
#include <ATen/ATen.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "json_text.h"
#include "request_parsing.h"
#include "service.h"
#include "service_call.h"
#include "service_v2_text.h"
#include "tsrunner/errors.h"
#include "tsrunner/request_queue.h"
#include "tsrunner/version.h"

namespace tsrunner::serve {

std::string v2_answer_head(const std::string& model_name, const std::string& request_id) {
  std::string body = "{\"model_name\":";
  append_string(body, model_name);
  body += ",\"model_version\":\"1\"";
  if (!request_id.empty()) {
    body += ",\"id\":";
    append_string(body, request_id);
  }
  return body + ",\"outputs\":[";
}
namespace {

constexpr const char* kModelsPrefix = "/v2/models/";
constexpr const char* kHeaderLength = "Inference-Header-Content-Length";

std::optional<at::ScalarType> scalar_type(const std::string& datatype) {
  const std::optional<DType> dtype = parse_protocol_datatype(datatype);
  return dtype ? tsrunner::scalar_type(*dtype) : std::nullopt;
}

// A tensor's or a manifest tensor's protocol datatype; FP32 where neither says (a plain
// module's tensors).
std::string datatype_of(DType dtype) {
  return dtype == DType::kUnknown ? "FP32" : std::string(protocol_datatype(dtype));
}
std::string datatype_of(at::ScalarType type) { return datatype_of(dtype_of(type)); }

// The manifest's tensors, then the text inputs or outputs (service_v2_text.h).
void append_specs(std::string& out, const std::vector<TensorSpec>& specs,
                  const std::vector<V2TextSpec>& text_specs) {
  std::vector<V2TextSpec> all;
  for (const TensorSpec& spec : specs) {
    V2TextSpec entry{spec.name, datatype_of(spec.dtype), {}};
    for (const Dim& dim : spec.dims) entry.shape.push_back(dim.is_symbolic() ? -1 : dim.size);
    all.push_back(std::move(entry));
  }
  all.insert(all.end(), text_specs.begin(), text_specs.end());
  out += "[";
  for (size_t i = 0; i < all.size(); ++i) {
    if (i > 0) out += ",";
    out += "{\"name\":";
    append_string(out, all[i].name);
    out += ",\"datatype\":\"" + all[i].datatype + "\",\"shape\":[";
    for (size_t d = 0; d < all[i].shape.size(); ++d) {
      if (d > 0) out += ",";
      out += std::to_string(all[i].shape[d]);
    }
    out += "]}";
  }
  out += "]";
}

// The elements of a contiguous CPU tensor as a flat JSON list.
void append_data(std::string& out, const at::Tensor& tensor) {
  out += "[";
  const int64_t count = tensor.numel();
  if (at::isFloatingType(tensor.scalar_type())) {
    const at::Tensor values = tensor.to(at::kFloat).contiguous();
    const float* data = values.data_ptr<float>();
    for (int64_t i = 0; i < count; ++i) {
      if (i > 0) out += ",";
      append_float(out, data[i]);
    }
  } else if (tensor.scalar_type() == at::kBool) {
    const bool* data = tensor.data_ptr<bool>();
    for (int64_t i = 0; i < count; ++i)
      out += (i > 0 ? "," : "") + std::string(data[i] ? "true" : "false");
  } else {
    const at::Tensor values = tensor.to(at::kLong).contiguous();
    const int64_t* data = values.data_ptr<int64_t>();
    for (int64_t i = 0; i < count; ++i) {
      if (i > 0) out += ",";
      out += std::to_string(data[i]);
    }
  }
  out += "]";
}

}  // namespace

void Service::v2(const std::shared_ptr<Call>& call) {
  const std::string& path = call->request.path;
  const bool get = call->request.method == "GET" || call->request.method == "HEAD";
  if (path == "/v2") {
    if (!get) return call->fail(405, "use GET /v2");
    std::string body = "{\"name\":\"tsrun\",\"version\":";
    append_string(body, version());
    return call->answer_json(body + ",\"extensions\":[\"binary_tensor_data\"]}");
  }
  if (path == "/v2/health/live" || path == "/v2/health/ready") {
    if (!get) return call->fail(405, "use GET " + path);
    return call->answer({200, "application/json", "", {}});
  }
  if (path.rfind(kModelsPrefix, 0) != 0) return call->fail(404, "no route " + path);
  // {name}[/versions/{version}][/ready | /infer]
  std::vector<std::string> parts;
  for (size_t start = std::strlen(kModelsPrefix); start <= path.size();) {
    const size_t end = std::min(path.find('/', start), path.size());
    parts.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  size_t next = 1;
  if (parts.size() >= 3 && parts[1] == "versions") {
    if (parts[2] != "1") return call->fail(404, "model version " + parts[2] + " not found (1 is)");
    next = 3;
  }
  const std::string action = next < parts.size() ? parts[next] : "";
  if (next + 1 < parts.size() || (action != "" && action != "ready" && action != "infer")) {
    return call->fail(404, "no route " + path);
  }
  ServedModel* model = find_model(parts[0]);
  if (model == nullptr) return call->fail(404, "model \"" + parts[0] + "\" not found");
  if (action == "infer") {
    if (call->request.method != "POST") return call->fail(405, "use POST " + path);
    return v2_infer(call, *model);
  }
  if (!get) return call->fail(405, "use GET " + path);
  if (action == "ready") return call->answer({200, "application/json", "", {}});
  const Manifest& manifest = model->runner->manifest();
  std::string body = "{\"name\":";
  append_string(body, model->name);
  body += ",\"versions\":[\"1\"],\"platform\":\"pytorch_libtorch\",\"inputs\":";
  append_specs(body, manifest.inputs, v2_text_inputs(*model));
  body += ",\"outputs\":";
  append_specs(body, manifest.outputs, v2_text_outputs(*model));
  call->answer_json(body + "}");
}

void Service::v2_infer(const std::shared_ptr<Call>& call, ServedModel& model) {
  std::optional<size_t> json_length;
  if (const std::string_view value = call->request.header(kHeaderLength); !value.empty()) {
    size_t length = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
    if (ec != std::errc() || end != value.data() + value.size()) {
      return call->fail(400, std::string(kHeaderLength) + " must be a byte count");
    }
    json_length = length;
  }
  auto request =
      std::make_shared<V2InferRequest>(parse_v2_infer_request(call->request.body, json_length));
  call->request.body.clear();  // the tensors hold their own copy now
  for (const V2Tensor& tensor : request->inputs) {
    if (tensor.datatype == "BYTES") return v2_infer_text(call, model, std::move(request));
  }
  const Manifest& manifest = model.runner->manifest();
  for (const std::string& name : request->outputs) {
    bool known = false;
    for (const TensorSpec& spec : manifest.outputs) known = known || spec.name == name;
    if (!known) return call->fail(400, "unknown output \"" + name + "\"");
  }
  if (!admit(call)) return;
  auto inputs = std::make_shared<TensorMap>();
  for (V2Tensor& tensor : request->inputs) {
    const std::optional<at::ScalarType> type = scalar_type(tensor.datatype);
    if (!type) return call->fail(400, "input \"" + tensor.name + "\": unsupported datatype");
    if (inputs->count(tensor.name) > 0) {
      return call->fail(400, "input \"" + tensor.name + "\" is given twice");
    }
    at::Tensor value = at::empty(tensor.shape, at::TensorOptions().dtype(*type));
    if (!tensor.bytes.empty())
      std::memcpy(value.data_ptr(), tensor.bytes.data(), tensor.bytes.size());
    tensor.bytes.clear();
    inputs->emplace(tensor.name, std::move(value));
  }
  queue_.run([call, request, inputs, &model] {
    try {
      const TensorMap outputs = model.runner->run(*inputs);
      std::vector<std::string> names = request->outputs;
      std::vector<bool> binary = request->binary_outputs;
      if (names.empty()) {
        for (const TensorSpec& spec : model.runner->manifest().outputs) {
          names.push_back(spec.name);
          binary.push_back(request->binary_by_default);
        }
      }
      std::string body = v2_answer_head(model.name, request->id);
      std::string blobs;
      for (size_t i = 0; i < names.size(); ++i) {
        const at::Tensor tensor = outputs.at(names[i]).detach().cpu().contiguous();
        if (i > 0) body += ",";
        body += "{\"name\":";
        append_string(body, names[i]);
        body += ",\"datatype\":\"" + datatype_of(tensor.scalar_type()) + "\",\"shape\":[";
        for (int64_t d = 0; d < tensor.dim(); ++d) {
          body += (d > 0 ? "," : "") + std::to_string(tensor.size(d));
        }
        body += "]";
        if (binary[i]) {
          const size_t size = tensor.numel() * tensor.element_size();
          body += ",\"parameters\":{\"binary_data_size\":" + std::to_string(size) + "}}";
          blobs.append(static_cast<const char*>(tensor.data_ptr()), size);
        } else {
          body += ",\"data\":";
          append_data(body, tensor);
          body += "}";
        }
      }
      body += "]}";
      if (std::find(binary.begin(), binary.end(), true) == binary.end()) {
        return call->answer_json(std::move(body));
      }
      HttpResponse response{200, "application/octet-stream", body + blobs, {}};
      response.headers.emplace_back(kHeaderLength, std::to_string(body.size()));
      call->answer(std::move(response));
    } catch (const InvalidInput& error) {
      call->fail(400, error.what());
    } catch (const std::exception& error) {
      call->fail(500, error.what());
    }
  });
}

}  // namespace tsrunner::serve
