// embed: sentence embeddings and their cosine similarities, in plain C++ on libtsrunner.
//
//   embed model.pt "first text" "second text" ...
//
// Prints one JSON line per text ({"text": ..., "embedding": [...]}) and then the cosine
// similarity of the first text to each of the others. Mean pooling over real tokens followed by
// L2 normalisation: what sentence-transformers does for all-MiniLM-L6-v2.
#include <ATen/ATen.h>
#include <tsrunner/tsrunner.h>

#include <iomanip>
#include <iostream>
#include <string>
#include <vector>

namespace {

at::Tensor to_tensor(const std::vector<tsrunner::Encoding>& batch,
                     std::vector<int64_t> tsrunner::Encoding::* field) {
  const auto rows = static_cast<int64_t>(batch.size());
  const auto columns = static_cast<int64_t>((batch.front().*field).size());
  at::Tensor tensor = at::empty({rows, columns}, at::kLong);
  for (int64_t row = 0; row < rows; ++row) {
    const std::vector<int64_t>& values = batch[row].*field;
    std::copy(values.begin(), values.end(), tensor[row].data_ptr<int64_t>());
  }
  return tensor;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: embed MODEL.pt TEXT [TEXT ...]\n";
    return 2;
  }
  try {
    const std::string model = argv[1];
    const std::vector<std::string> texts(argv + 2, argv + argc);

    const tsrunner::Runner runner(model);
    const tsrunner::Tokenizer tokenizer = tsrunner::Tokenizer::from_file(model);
    const std::vector<tsrunner::Encoding> batch = tokenizer.encode_batch(texts);

    const at::Tensor mask = to_tensor(batch, &tsrunner::Encoding::attention_mask);
    tsrunner::TensorMap inputs{{"input_ids", to_tensor(batch, &tsrunner::Encoding::ids)},
                               {"attention_mask", mask}};
    if (runner.manifest().find_input("token_type_ids")) {
      inputs.emplace("token_type_ids", to_tensor(batch, &tsrunner::Encoding::type_ids));
    }
    const at::Tensor hidden = runner.run(inputs).at("last_hidden_state");

    const at::Tensor weights = mask.unsqueeze(-1).to(hidden.scalar_type());
    const at::Tensor mean = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1e-9);
    const at::Tensor embeddings = mean / mean.norm(2, -1, true).clamp_min(1e-12);

    std::cout << std::setprecision(9);
    for (size_t i = 0; i < texts.size(); ++i) {
      std::cout << "{\"index\": " << i << ", \"embedding\": [";
      const at::Tensor row = embeddings[static_cast<int64_t>(i)];
      for (int64_t j = 0; j < row.size(0); ++j) {
        std::cout << (j ? ", " : "") << row[j].item<float>();
      }
      std::cout << "]}\n";
    }
    const at::Tensor similarity =
        at::matmul(embeddings.narrow(0, 1, embeddings.size(0) - 1), embeddings[0]);
    for (int64_t i = 0; i < similarity.size(0); ++i) {
      std::cout << "similarity(" << texts[0] << " | " << texts[static_cast<size_t>(i) + 1]
                << ") = " << std::setprecision(4) << similarity[i].item<float>() << "\n";
    }
    return 0;
  } catch (const tsrunner::InvalidInput& error) {
    std::cerr << "embed: invalid input: " << error.what() << "\n";
    return 2;
  } catch (const tsrunner::LoadError& error) {
    std::cerr << "embed: " << error.what() << "\n";
    return 2;
  } catch (const std::exception& error) {
    std::cerr << "embed: " << error.what() << "\n";
    return 1;
  }
}
