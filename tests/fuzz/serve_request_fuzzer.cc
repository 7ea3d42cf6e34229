// Arbitrary bytes as a request body of tsrun serve's routes. The first byte picks the route's
// parser (byte % 7: embed, predict, rerank, tokenize, OpenAI, v2 JSON, v2 binary); the rest is
// the body. For v2 binary, the body's first two bytes (little-endian) are the JSON header's
// length (Inference-Header-Content-Length). Each parser returns a request that keeps its contract
// or throws RequestError with status 400 or 422 and a message. Any other exception, crash, leak or
// UB is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "request_parsing.h"

using namespace tsrunner::serve;

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

void check_texts(const std::vector<std::string>& texts) { check(!texts.empty()); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t selector = data[0];
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    switch (selector % 7) {
      case 0:
        check_texts(parse_embed_request(body).inputs);
        break;
      case 1: {
        const PredictRequest request = parse_predict_request(body);
        check(!request.inputs.empty() && (request.batch || request.inputs.size() == 1));
        break;
      }
      case 2: {
        const RerankRequest request = parse_rerank_request(body);
        check_texts(request.texts);
        break;
      }
      case 3:
        check_texts(parse_tokenize_request(body).inputs);
        break;
      case 4:
        check_texts(parse_openai_embedding_request(body).inputs);
        break;
      default: {
        std::optional<size_t> json_length;
        std::string_view rest = body;
        if (selector % 7 == 6) {
          if (rest.size() < 2) return 0;
          json_length = static_cast<uint8_t>(rest[0]) | static_cast<uint8_t>(rest[1]) << 8;
          rest.remove_prefix(2);
        }
        const V2InferRequest request = parse_v2_infer_request(rest, json_length);
        check(!request.inputs.empty());
        check(request.outputs.size() == request.binary_outputs.size());
        for (const V2Tensor& tensor : request.inputs) {
          size_t elements = 1;
          for (int64_t dim : tensor.shape) {
            check(dim >= 0);
            elements *= static_cast<size_t>(dim);
          }
          check(tensor.bytes.size() == elements * v2_element_size(tensor.datatype));
        }
        break;
      }
    }
  } catch (const RequestError& error) {
    check(error.status == 400 || error.status == 422);
    check(std::string_view(error.what()).size() > 0);
  }
  return 0;
}
