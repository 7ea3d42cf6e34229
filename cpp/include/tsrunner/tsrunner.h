#pragma once

// Convenience header: the whole public C++ API of tsrunner.
#include "tsrunner/cpu_info.h"
#include "tsrunner/errors.h"
#include "tsrunner/example_inputs.h"
#include "tsrunner/generator.h"
#include "tsrunner/integrity.h"
#include "tsrunner/manifest.h"
#include "tsrunner/pipeline.h"
#include "tsrunner/prediction.h"
#include "tsrunner/prediction_json.h"
#include "tsrunner/request_queue.h"
#include "tsrunner/runner.h"
#include "tsrunner/task.h"
#include "tsrunner/texts.h"
#include "tsrunner/thread_pool.h"
#include "tsrunner/tokenizer.h"
#include "tsrunner/version.h"
