#include <string>
#include <utility>

#include "tsrunner/errors.h"
#include "tsrunner/tokenizer.h"

namespace tsrunner {

namespace {

void check_length(const std::string& what, const char* field, size_t length, size_t expected) {
  if (length == expected) return;
  throw InvalidInput(what + ": " + field + " has " + std::to_string(length) +
                     " entries but ids has " + std::to_string(expected) +
                     " (every per-token field must be as long as ids; Encoding::from_ids builds "
                     "one from ids alone)");
}

template <typename Value>
void check_values(const std::string& what, const char* field, const std::vector<Value>& values,
                  Value low, Value high) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i] < low || values[i] > high) {
      throw InvalidInput(what + ": " + field + "[" + std::to_string(i) + "] is " +
                         std::to_string(values[i]) + ", expected " + std::to_string(low) + " to " +
                         std::to_string(high));
    }
  }
}

}  // namespace

Encoding Encoding::from_ids(std::vector<int64_t> ids, std::vector<int64_t> type_ids) {
  const size_t length = ids.size();
  if (type_ids.empty()) type_ids.assign(length, 0);
  check_length("Encoding::from_ids", "type_ids", type_ids.size(), length);
  Encoding encoding;
  encoding.ids = std::move(ids);
  encoding.type_ids = std::move(type_ids);
  encoding.attention_mask.assign(length, 1);
  encoding.tokens.assign(length, std::string());
  encoding.offsets.assign(length, {0, 0});
  encoding.sequence_ids.assign(length, 0);
  encoding.word_ids.assign(length, -1);
  return encoding;
}

void Encoding::validate(const std::string& what) const {
  const size_t length = ids.size();
  check_length(what, "type_ids", type_ids.size(), length);
  check_length(what, "attention_mask", attention_mask.size(), length);
  check_length(what, "tokens", tokens.size(), length);
  check_length(what, "offsets", offsets.size(), length);
  check_length(what, "sequence_ids", sequence_ids.size(), length);
  check_length(what, "word_ids", word_ids.size(), length);
  check_values<int64_t>(what, "attention_mask", attention_mask, 0, 1);
  check_values<int>(what, "sequence_ids", sequence_ids, -1, 1);
  for (size_t i = 0; i < length; ++i) {
    if (offsets[i].first > offsets[i].second) {
      throw InvalidInput(what + ": offsets[" + std::to_string(i) + "] begins at " +
                         std::to_string(offsets[i].first) + ", after its end " +
                         std::to_string(offsets[i].second));
    }
  }
}

}  // namespace tsrunner
