#include "multiple_choice.h"

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include <charconv>
#include <string>

#include "tsrunner/errors.h"

namespace tsrunner::cli {
namespace {

// One Encoding field of every choice as a [1, choices, sequence] tensor.
at::Tensor stacked(const std::vector<Encoding>& encodings, std::vector<int64_t> Encoding::* field) {
  const auto choices = static_cast<int64_t>(encodings.size());
  const auto length = static_cast<int64_t>(encodings.front().size());
  at::Tensor tensor = at::empty({1, choices, length}, at::kLong);
  int64_t* data = tensor.data_ptr<int64_t>();
  for (const Encoding& encoding : encodings) {
    data = std::copy((encoding.*field).begin(), (encoding.*field).end(), data);
  }
  return tensor;
}

// The shortest decimal that reads back to the same float32: "0.71", not 0.7099999785423279.
double shortest(float value) {
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::stod(std::string(buffer, result.ptr));
}

}  // namespace

void print_multiple_choice(const Runner& runner, const Tokenizer& tokenizer,
                           const std::vector<std::string>& texts,
                           const std::vector<std::string>& choices, std::ostream& out) {
  if (choices.size() < 2) {
    throw InvalidInput("a multiple-choice export needs the choices: two or more --text-pair (got " +
                       std::to_string(choices.size()) + ")");
  }
  const Manifest& manifest = runner.manifest();
  const size_t fixed_length = manifest.shape_contract.kind == "fixed"
                                  ? static_cast<size_t>(manifest.shape_contract.max_sequence)
                                  : 0;
  for (const std::string& text : texts) {
    const std::vector<std::string> prompts(choices.size(), text);
    const std::vector<Encoding> encodings = tokenizer.encode_batch(prompts, choices, fixed_length);
    TensorMap inputs{{"input_ids", stacked(encodings, &Encoding::ids)}};
    if (manifest.find_input("attention_mask")) {
      inputs.emplace("attention_mask", stacked(encodings, &Encoding::attention_mask));
    }
    if (manifest.find_input("token_type_ids")) {
      inputs.emplace("token_type_ids", stacked(encodings, &Encoding::type_ids));
    }
    const at::Tensor scores = runner.run(inputs)
                                  .at(manifest.outputs.front().name)
                                  .to(at::kFloat)
                                  .reshape({-1})
                                  .softmax(0)
                                  .contiguous();
    nlohmann::json answer = {{"choices", nlohmann::json::array()}};
    for (size_t i = 0; i < choices.size(); ++i) {
      answer["choices"].push_back(
          {{"choice", choices[i]},
           {"score", shortest(scores[static_cast<int64_t>(i)].item<float>())}});
    }
    answer["best"] = scores.argmax().item<int64_t>();
    out << answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
}

}  // namespace tsrunner::cli
