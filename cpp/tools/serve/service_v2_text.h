#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "service.h"

namespace tsrunner::serve {

// An input or output of the Open Inference Protocol's model metadata.
struct V2TextSpec {
  std::string name;
  std::string datatype;  // "BYTES", "FP32"
  std::vector<int64_t> shape;
};

// The text inputs a model takes on /v2/models/{name}/infer: "text", and "text_pair" where the
// task takes pairs; none for a model without text routes (no tokenizer or no task output).
std::vector<V2TextSpec> v2_text_inputs(const ServedModel& model);

// What a text request is answered with: "embedding" (feature-extraction), "scores" in label
// order (text-classification) and "prediction", each input's /predict answer as JSON text.
std::vector<V2TextSpec> v2_text_outputs(const ServedModel& model);

// The start of an infer answer, up to its "outputs" list: {"model_name", "model_version",
// "id" (when the request has one), "outputs":[
std::string v2_answer_head(const std::string& model_name, const std::string& request_id);

}  // namespace tsrunner::serve
