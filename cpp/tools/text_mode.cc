#include "text_mode.h"

#include "tsrunner/errors.h"
#include "tsrunner/prediction_json.h"

namespace tsrunner::cli {

void print_text_predictions(const Pipeline& pipeline, const std::vector<std::string>& texts,
                            const std::vector<std::string>& pairs, std::ostream& out) {
  if (pipeline.runner().manifest().task_kind == Task::kMultipleChoice) {
    // Every --text is scored against all the choices (the --text-pair values).
    if (pairs.size() < 2) {
      throw InvalidInput(
          "a multiple-choice export needs the choices: two or more --text-pair (got " +
          std::to_string(pairs.size()) + ")");
    }
    const std::vector<std::vector<std::string>> choices(texts.size(), pairs);
    for (const Prediction& prediction : pipeline.predict_choices(texts, choices)) {
      out << prediction_to_json(prediction) << "\n";
    }
    return;
  }
  if (!pairs.empty() && pairs.size() != texts.size()) {
    throw InvalidInput("give one --text-pair per --text (got " + std::to_string(texts.size()) +
                       " texts and " + std::to_string(pairs.size()) + " pairs)");
  }
  for (const Prediction& prediction : pipeline.predict(texts, pairs)) {
    out << prediction_to_json(prediction) << "\n";
  }
}

}  // namespace tsrunner::cli
