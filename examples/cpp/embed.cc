// embed: run a tsrunner export on texts, in plain C++ on libtsrunner.
//
//   embed model.pt "first text" "second text" ...
//
// For a sentence-embedding export (task feature-extraction) it prints one JSON line per text,
// {"index": i, "embedding": [...]}, pooled and normalised as the export's manifest says (what
// sentence-transformers' encode returns), then the cosine similarity of the first text to each
// of the others. Any other task prints its answer per text, e.g. `0: positive (0.71)` for a
// classifier. tsrunner::Pipeline does the tokenizing, batching and task-specific decoding.
#include <tsrunner/tsrunner.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0, norm_a = 0, norm_b = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    dot += double(a[i]) * b[i];
    norm_a += double(a[i]) * a[i];
    norm_b += double(b[i]) * b[i];
  }
  return dot / std::max(std::sqrt(norm_a * norm_b), 1e-12);
}

// One line for a prediction of a task other than feature-extraction.
std::string answer_of(const tsrunner::Prediction& prediction) {
  std::ostringstream out;
  out << std::setprecision(4);
  if (!prediction.labels.empty()) {  // text-classification: best label first
    out << prediction.labels.front().label << " (" << prediction.labels.front().score << ")";
  } else if (!prediction.masks.empty()) {  // fill-mask: the best token for each mask
    for (const tsrunner::MaskFill& mask : prediction.masks) {
      out << "[" << mask.position << "] " << mask.candidates.front().token << " ("
          << mask.candidates.front().score << ") ";
    }
  } else if (!prediction.entities.empty()) {  // token-classification
    for (const tsrunner::Entity& entity : prediction.entities) {
      out << entity.entity_group << ": " << entity.word << " ";
    }
  } else if (prediction.answer) {  // question-answering
    out << prediction.answer->text << " (" << prediction.answer->score << ")";
  } else {
    out << "(nothing found)";
  }
  return out.str();
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
    const tsrunner::Pipeline pipeline(runner, tsrunner::Tokenizer::from_file(model));
    const std::vector<tsrunner::Prediction> predictions = pipeline.predict(texts);

    if (runner.manifest().task != "feature-extraction") {
      for (size_t i = 0; i < texts.size(); ++i) {
        std::cout << i << ": " << answer_of(predictions[i]) << "\n";
      }
      return 0;
    }
    std::cout << std::setprecision(9);
    for (size_t i = 0; i < texts.size(); ++i) {
      std::cout << "{\"index\": " << i << ", \"embedding\": [";
      const std::vector<float>& embedding = predictions[i].embedding;
      for (size_t j = 0; j < embedding.size(); ++j) std::cout << (j ? ", " : "") << embedding[j];
      std::cout << "]}\n";
    }
    for (size_t i = 1; i < texts.size(); ++i) {
      std::cout << "similarity(" << texts[0] << " | " << texts[i] << ") = " << std::setprecision(4)
                << cosine(predictions[0].embedding, predictions[i].embedding) << "\n";
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
