#pragma once

#include <string>
#include <vector>

#include "tsrunner/export.h"
#include "tsrunner/prediction.h"

namespace tsrunner {

// The one JSON form of a prediction, shared by tsrun's output lines, Python's Runner.predict
// (which parses it) and anything else that answers in JSON, so the keys are defined once. One
// object keyed by the task, with Hugging Face pipeline keys (offsets are characters):
// feature-extraction {"embedding": [floats]}; text-classification {"labels": [{"label",
// "score"}]}; fill-mask {"masks": [{"candidates": [{"score", "token", "token_str"}],
// "position"}]}; token-classification {"entities": [{"end", "entity_group", "score", "start",
// "word"}]}; question-answering {"answer": {"end", "score", "start", "text"}} or {"answer":
// null}; multiple-choice {"best": index, "choices": [{"choice", "score"}]}; {} for a prediction of
// no known task. Floats are the shortest decimal that reads back to the same float32 (null for NaN
// and infinity: JSON has neither); text that is not valid UTF-8 has U+FFFD in place of each bad
// byte.
TSR_API std::string prediction_to_json(const Prediction& prediction);

// Appends prediction_to_json(prediction) to `out`.
TSR_API void append_prediction_json(std::string& out, const Prediction& prediction);

// A JSON array of predictions, in order.
TSR_API std::string predictions_to_json(const std::vector<Prediction>& predictions);

// Appends `value` as prediction_to_json writes floats.
TSR_API void append_json_float(std::string& out, float value);

}  // namespace tsrunner
