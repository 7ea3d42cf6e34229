#pragma once

#include <string_view>

#include "tsrunner/export.h"

namespace tsrunner {

// What an export computes: the manifest's "task" string, parsed once (Manifest::task_kind).
// Code that depends on the task switches on this, never on the string.
enum class Task {
  kFeatureExtraction,
  kFillMask,
  kTextClassification,
  kTokenClassification,
  kQuestionAnswering,
  kMultipleChoice,
  kCausalLm,
  kText2Text,
  kImageClassification,
  // A task this build does not know (an archive from a newer exporter): Runner::run works as
  // for any export; task-aware output (Pipeline) refuses it. Manifest::task keeps the name.
  kOther,
};

// Every task but kOther, in declaration order.
inline constexpr Task kKnownTasks[] = {
    Task::kFeatureExtraction,
    Task::kFillMask,
    Task::kTextClassification,
    Task::kTokenClassification,
    Task::kQuestionAnswering,
    Task::kMultipleChoice,
    Task::kCausalLm,
    Task::kText2Text,
    Task::kImageClassification,
};

// The manifest name of a task ("fill-mask", ...) -> Task; kOther for any other name.
TSR_API Task parse_task(std::string_view name);

// The manifest name of a task; "other" for kOther (Manifest::task has the archive's own name).
TSR_API std::string_view task_name(Task task);

}  // namespace tsrunner
