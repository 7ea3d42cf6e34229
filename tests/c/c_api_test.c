/* The C API from C11: load, info, tokenize, predict, run on raw buffers, every handle freed,
 * and bad arguments answered with the right status and a message naming them. Uses the
 * fixtures the C++ tests use (TSR_FIXTURES: tiny_bert.pt, a 32-wide feature-extraction BERT). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tsrunner/c_api.h"

static int failures = 0;

#define CHECK(condition)                                                            \
  do {                                                                              \
    if (!(condition)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #condition); \
      ++failures;                                                                   \
    }                                                                               \
  } while (0)

/* A call that must succeed; prints the error otherwise. */
#define CHECK_OK(call)                                                      \
  do {                                                                      \
    tsr_status ok_status_ = (call);                                         \
    if (ok_status_ != TSR_OK) {                                             \
      fprintf(stderr, "%s:%d: %s returned %s\n", __FILE__, __LINE__, #call, \
              tsr_status_name(ok_status_));                                 \
      ++failures;                                                           \
    }                                                                       \
  } while (0)

/* Checks that a call returned `expected` with an error whose message contains `needle`. */
static void expect_error(int line, tsr_status status, tsr_error* error, tsr_status expected,
                         const char* needle) {
  const char* message = tsr_error_message(error);
  if (status != expected || tsr_error_status(error) != expected ||
      strstr(message, needle) == NULL || strchr(message, '\n') != NULL) {
    fprintf(stderr, "line %d: expected %s containing \"%s\", got %s: \"%s\"\n", line,
            tsr_status_name(expected), needle, tsr_status_name(status), message);
    ++failures;
  }
  tsr_error_free(error);
}
#define EXPECT_ERROR(expected, needle, call)                 \
  do {                                                       \
    tsr_error* error = NULL;                                 \
    tsr_status status = (call);                              \
    expect_error(__LINE__, status, error, expected, needle); \
  } while (0)

static char* fixture(const char* name) {
  const char* directory = getenv("TSR_FIXTURES");
  if (directory == NULL || *directory == '\0') {
    fprintf(stderr, "TSR_FIXTURES is not set: run `make test-cpp`\n");
    exit(2);
  }
  char* path = malloc(strlen(directory) + strlen(name) + 2);
  sprintf(path, "%s/%s", directory, name);
  return path;
}

static void test_versions(void) {
  CHECK(strcmp(tsr_version(), TSRUNNER_VERSION_STRING) == 0);
  CHECK(tsr_abi_version() == TSR_ABI_VERSION);
  CHECK(tsr_abi_matches());
  char composed[64];
  snprintf(composed, sizeof composed, "%d.%d.%d", TSRUNNER_VERSION_MAJOR, TSRUNNER_VERSION_MINOR,
           TSRUNNER_VERSION_PATCH);
  CHECK(strncmp(composed, TSRUNNER_VERSION_STRING, strlen(composed)) == 0);
  CHECK(strcmp(tsr_status_name(TSR_INVALID_INPUT), "INVALID_INPUT") == 0);
  CHECK(strcmp(tsr_status_name((tsr_status)99), "UNKNOWN") == 0);
  CHECK(tsr_dtype_size(TSR_INT64) == 8 && tsr_dtype_size(TSR_BFLOAT16) == 2);
  CHECK(tsr_dtype_size(0) == 0);
  CHECK(tsr_error_status(NULL) == TSR_OK && strcmp(tsr_error_message(NULL), "") == 0);
}

static void test_load_errors(const char* model) {
  static int sentinel;
  tsr_runner* runner = (tsr_runner*)&sentinel; /* a failed load must reset it to NULL */
  EXPECT_ERROR(TSR_LOAD_ERROR, "/no/such/model.pt",
               tsr_runner_load("/no/such/model.pt", NULL, &runner, &error));
  CHECK(runner == NULL);
  EXPECT_ERROR(TSR_INVALID_INPUT, "tsr_runner_load: path is NULL",
               tsr_runner_load(NULL, NULL, &runner, &error));
  EXPECT_ERROR(TSR_INVALID_INPUT, "out is NULL", tsr_runner_load(model, NULL, NULL, &error));
  /* Without an error object the status still says what happened. */
  CHECK(tsr_runner_load("/no/such/model.pt", NULL, &runner, NULL) == TSR_LOAD_ERROR);

  tsr_runner_options* options = NULL;
  CHECK_OK(tsr_runner_options_create(&options, NULL));
  EXPECT_ERROR(TSR_INVALID_INPUT, "threads", tsr_runner_options_set_threads(options, -1, &error));
  EXPECT_ERROR(TSR_INVALID_INPUT, "threads", tsr_runner_options_set_threads(options, 5000, &error));
  EXPECT_ERROR(TSR_INVALID_INPUT, "warp",
               tsr_runner_options_set_kernel_path(options, "warp", &error));
  EXPECT_ERROR(TSR_INVALID_INPUT, "kernel_path is NULL",
               tsr_runner_options_set_kernel_path(options, NULL, &error));
  /* The deprecated first name checks the same. */
  EXPECT_ERROR(TSR_INVALID_INPUT, "warp", tsr_runner_options_set_engine(options, "warp", &error));
  EXPECT_ERROR(TSR_INVALID_INPUT, "expected_sha256",
               tsr_runner_options_set_expected_sha256(options, "abc", &error));
  EXPECT_ERROR(TSR_INVALID_INPUT, "options is NULL",
               tsr_runner_options_set_threads(NULL, 1, &error));
  /* A digest pinned to something else refuses the file. */
  CHECK_OK(tsr_runner_options_set_expected_sha256(
      options, "0000000000000000000000000000000000000000000000000000000000000000", NULL));
  EXPECT_ERROR(TSR_LOAD_ERROR, "", tsr_runner_load(model, options, &runner, &error));
  CHECK(runner == NULL);
  tsr_runner_options_free(options);
}

static tsr_runner* load(const char* model) {
  tsr_runner_options* options = NULL;
  tsr_runner* runner = NULL;
  CHECK_OK(tsr_runner_options_create(&options, NULL));
  CHECK_OK(tsr_runner_options_set_threads(options, 1, NULL));
  CHECK_OK(tsr_runner_options_set_kernel_path(options, "auto", NULL));
  CHECK_OK(tsr_runner_options_set_verify_integrity(options, 1, NULL));
  CHECK_OK(tsr_runner_load(model, options, &runner, NULL));
  tsr_runner_options_free(options); /* the runner keeps its own copy */
  if (runner == NULL) {
    fprintf(stderr, "cannot load %s\n", model);
    exit(1);
  }
  return runner;
}

static void test_info(const tsr_runner* runner) {
  const char* manifest = tsr_runner_manifest_json(runner);
  CHECK(manifest != NULL && strstr(manifest, "\"feature-extraction\"") != NULL);
  CHECK(manifest != NULL && strstr(manifest, "\"last_hidden_state\"") != NULL);
  const char* kernel_path = tsr_runner_kernel_path(runner);
  CHECK(kernel_path != NULL &&
        (strcmp(kernel_path, "onednn") == 0 || strcmp(kernel_path, "default") == 0));
  CHECK(tsr_runner_engine(runner) == kernel_path); /* the deprecated first name */
  CHECK(tsr_runner_manifest_json(NULL) == NULL);
}

static void test_tokenize(const tsr_runner* runner, const char* model) {
  const char* text = "Hello world";
  tsr_encoding* encoding = NULL;
  CHECK_OK(tsr_runner_encode(runner, text, strlen(text), NULL, 0, &encoding, NULL));
  const size_t length = tsr_encoding_length(encoding);
  CHECK(length == 4); /* [CLS] hello world [SEP] */
  const int64_t* ids = tsr_encoding_ids(encoding);
  CHECK(ids[0] == 101 && ids[3] == 102);
  CHECK(tsr_encoding_attention_mask(encoding)[2] == 1 && tsr_encoding_type_ids(encoding)[2] == 0);
  const int64_t* offsets = tsr_encoding_offsets(encoding);
  CHECK(offsets[2] == 0 && offsets[3] == 5 && offsets[4] == 6 && offsets[5] == 11);
  CHECK(offsets[0] == 0 && offsets[1] == 0); /* [CLS] */
  CHECK(tsr_encoding_word_ids(encoding)[0] == -1 && tsr_encoding_word_ids(encoding)[2] == 1);
  CHECK(strcmp(tsr_encoding_token(encoding, 1), "hello") == 0);
  CHECK(tsr_encoding_token(encoding, length) == NULL);

  /* The same from a tokenizer handle; with a pair, the pair's tokens get type id 1. */
  tsr_tokenizer* tokenizer = NULL;
  tsr_encoding* pair_encoding = NULL;
  CHECK_OK(tsr_tokenizer_load(model, &tokenizer, NULL));
  CHECK_OK(tsr_tokenizer_encode(tokenizer, text, strlen(text), "Hi", 2, &pair_encoding, NULL));
  CHECK(tsr_encoding_length(pair_encoding) == 6);
  CHECK(memcmp(tsr_encoding_ids(pair_encoding), ids, 3 * sizeof(int64_t)) == 0);
  CHECK(tsr_encoding_type_ids(pair_encoding)[4] == 1);

  tsr_encoding* refused = NULL;
  EXPECT_ERROR(TSR_INVALID_INPUT, "text is NULL but its length is 3",
               tsr_tokenizer_encode(tokenizer, NULL, 3, NULL, 0, &refused, &error));
  EXPECT_ERROR(TSR_INVALID_INPUT, "UTF-8",
               tsr_tokenizer_encode(tokenizer, "a\xff", 2, NULL, 0, &refused, &error));
  EXPECT_ERROR(TSR_INVALID_INPUT, "tokenizer is NULL",
               tsr_tokenizer_encode(NULL, "a", 1, NULL, 0, &refused, &error));
  EXPECT_ERROR(TSR_INVALID_INPUT, "out is NULL",
               tsr_tokenizer_encode(tokenizer, "a", 1, NULL, 0, NULL, &error));
  CHECK(refused == NULL);
  tsr_tokenizer* missing = tokenizer;
  EXPECT_ERROR(TSR_LOAD_ERROR, "/no/such/tokenizer.json",
               tsr_tokenizer_load("/no/such/tokenizer.json", &missing, &error));
  CHECK(missing == NULL);
  /* NULL text with length 0 is the empty text: [CLS] [SEP]. */
  tsr_encoding* empty = NULL;
  CHECK_OK(tsr_runner_encode(runner, NULL, 0, NULL, 0, &empty, NULL));
  CHECK(tsr_encoding_length(empty) == 2);
  tsr_encoding_free(empty);
  tsr_encoding_free(pair_encoding);
  tsr_tokenizer_free(tokenizer);
  tsr_encoding_free(encoding);
}

/* Mean pooling of last_hidden_state over a batch-1 run: what predict does for tiny_bert. */
static void test_run_matches_predict(const tsr_runner* runner) {
  const char* texts[] = {"Hello world", "The stock market fell on Tuesday"};
  const size_t lengths[] = {strlen(texts[0]), strlen(texts[1])};
  tsr_predictions* predictions = NULL;
  CHECK_OK(tsr_runner_predict(runner, texts, lengths, 2, NULL, NULL, 0, &predictions, NULL));
  CHECK(tsr_predictions_count(predictions) == 2);
  const char* json = tsr_predictions_json(predictions);
  CHECK(json != NULL && strncmp(json, "[{\"embedding\":[", 15) == 0);
  const char* item = NULL;
  CHECK_OK(tsr_predictions_item_json(predictions, 1, &item, NULL));
  CHECK(item != NULL && strncmp(item, "{\"embedding\":[", 14) == 0 && strstr(json, item) != NULL);
  const float* embedding = NULL;
  size_t dimension = 0;
  CHECK_OK(tsr_predictions_embedding(predictions, 0, &embedding, &dimension, NULL));
  CHECK(dimension == 32);
  const float* refused = embedding;
  size_t refused_dimension = dimension;
  EXPECT_ERROR(TSR_INVALID_INPUT, "index 2 is out of range (2 predictions)",
               tsr_predictions_embedding(predictions, 2, &refused, &refused_dimension, &error));
  CHECK(refused == NULL && refused_dimension == 0); /* a failed call leaves them empty */
  if (embedding == NULL) return;

  /* NUL-terminated texts (no lengths) give the same embedding, bit for bit. */
  tsr_predictions* again = NULL;
  const float* embedding_again = NULL;
  CHECK_OK(tsr_runner_predict(runner, texts, NULL, 1, NULL, NULL, 8, &again, NULL));
  CHECK_OK(tsr_predictions_embedding(again, 0, &embedding_again, &dimension, NULL));
  CHECK(memcmp(embedding, embedding_again, 32 * sizeof(float)) == 0);
  tsr_predictions_free(again);

  tsr_encoding* encoding = NULL;
  CHECK_OK(tsr_runner_encode(runner, texts[0], lengths[0], NULL, 0, &encoding, NULL));
  const int64_t shape[] = {1, (int64_t)tsr_encoding_length(encoding)};
  const size_t bytes = (size_t)shape[1] * sizeof(int64_t);
  const tsr_tensor inputs[] = {
      {"input_ids", TSR_INT64, shape, 2, tsr_encoding_ids(encoding), bytes},
      {"attention_mask", TSR_INT64, shape, 2, tsr_encoding_attention_mask(encoding), bytes}};
  tsr_outputs* outputs = NULL;
  CHECK_OK(tsr_runner_run(runner, inputs, 2, &outputs, NULL));
  CHECK(tsr_outputs_count(outputs) == 2);
  tsr_tensor hidden;
  CHECK_OK(tsr_outputs_find(outputs, "last_hidden_state", &hidden, NULL));
  CHECK(hidden.dtype == TSR_FLOAT32 && hidden.rank == 3);
  CHECK(hidden.shape[0] == 1 && hidden.shape[1] == shape[1] && hidden.shape[2] == 32);
  CHECK(hidden.data_bytes == (size_t)shape[1] * 32 * sizeof(float));
  const float* values = hidden.data;
  double max_difference = 0.0;
  for (int64_t column = 0; column < 32; ++column) {
    double sum = 0.0;
    for (int64_t token = 0; token < shape[1]; ++token) sum += values[token * 32 + column];
    const double difference = fabs(sum / (double)shape[1] - embedding[column]);
    if (difference > max_difference) max_difference = difference;
  }
  CHECK(max_difference < 1e-5);
  tsr_tensor first;
  CHECK_OK(tsr_outputs_at(outputs, 0, &first, NULL));
  CHECK(strcmp(first.name, "last_hidden_state") == 0 && first.data == hidden.data);
  EXPECT_ERROR(TSR_INVALID_INPUT, "no output named \"logits\"",
               tsr_outputs_find(outputs, "logits", &hidden, &error));
  EXPECT_ERROR(TSR_INVALID_INPUT, "index 2 is out of range",
               tsr_outputs_at(outputs, 2, &hidden, &error));
  tsr_outputs_free(outputs);
  tsr_encoding_free(encoding);
  tsr_predictions_free(predictions);
}

static void test_bad_predict_arguments(const tsr_runner* runner) {
  tsr_predictions* predictions = NULL;
  const char* texts[] = {"fine", NULL};
  EXPECT_ERROR(TSR_INVALID_INPUT, "texts is NULL",
               tsr_runner_predict(runner, NULL, NULL, 2, NULL, NULL, 0, &predictions, &error));
  EXPECT_ERROR(TSR_INVALID_INPUT, "texts[1] is NULL",
               tsr_runner_predict(runner, texts, NULL, 2, NULL, NULL, 0, &predictions, &error));
  EXPECT_ERROR(TSR_INVALID_INPUT, "runner is NULL",
               tsr_runner_predict(NULL, texts, NULL, 1, NULL, NULL, 0, &predictions, &error));
  const size_t lengths[] = {4};
  EXPECT_ERROR(TSR_INVALID_INPUT, "pair_lengths is given but pairs is NULL",
               tsr_runner_predict(runner, texts, NULL, 1, NULL, lengths, 0, &predictions, &error));
  CHECK(predictions == NULL);
  /* No texts: no predictions, not an error. */
  CHECK_OK(tsr_runner_predict(runner, NULL, NULL, 0, NULL, NULL, 0, &predictions, NULL));
  CHECK(predictions != NULL && tsr_predictions_count(predictions) == 0);
  CHECK(strcmp(tsr_predictions_json(predictions), "[]") == 0);
  tsr_predictions_free(predictions);
}

static void test_bad_run_arguments(const tsr_runner* runner) {
  const int64_t ids[] = {101, 7592, 2088, 102};
  const float floats[] = {1, 2, 3, 4};
  const int64_t shape[] = {1, 4};
  const int64_t zero[] = {1, 0};
  const int64_t negative[] = {-1, 4};
  const int64_t huge[] = {INT64_C(1) << 32, INT64_C(1) << 32}; /* 2^64 elements */
  const int64_t out_of_vocabulary[] = {101, 40000, 2088, 102};
  tsr_outputs* outputs = NULL;
#define RUN_ONE(name, dtype, dims, rank, data, bytes)                                     \
  tsr_runner_run(runner, (const tsr_tensor[]){{name, dtype, dims, rank, data, bytes}}, 1, \
                 &outputs, &error)
  EXPECT_ERROR(TSR_INVALID_INPUT, "inputs[0] (\"input_ids\").shape[1] is 0",
               RUN_ONE("input_ids", TSR_INT64, zero, 2, ids, 0));
  EXPECT_ERROR(TSR_INVALID_INPUT, "shape[0] is -1",
               RUN_ONE("input_ids", TSR_INT64, negative, 2, ids, 32));
  EXPECT_ERROR(TSR_INVALID_INPUT, "shape[1] makes the element count overflow",
               RUN_ONE("input_ids", TSR_INT64, huge, 2, ids, 32));
  EXPECT_ERROR(TSR_INVALID_INPUT, "data_bytes is 24 but its shape needs 32",
               RUN_ONE("input_ids", TSR_INT64, shape, 2, ids, 24));
  EXPECT_ERROR(TSR_INVALID_INPUT, "dtype is 0, not a tsr_dtype",
               RUN_ONE("input_ids", 0, shape, 2, ids, 32));
  EXPECT_ERROR(TSR_INVALID_INPUT, "rank is 0", RUN_ONE("input_ids", TSR_INT64, shape, 0, ids, 32));
  EXPECT_ERROR(TSR_INVALID_INPUT, "rank is 17",
               RUN_ONE("input_ids", TSR_INT64, shape, 17, ids, 32));
  EXPECT_ERROR(TSR_INVALID_INPUT, "inputs[0] (\"input_ids\").shape is NULL",
               RUN_ONE("input_ids", TSR_INT64, NULL, 2, ids, 32));
  EXPECT_ERROR(TSR_INVALID_INPUT, "data is NULL",
               RUN_ONE("input_ids", TSR_INT64, shape, 2, NULL, 32));
  EXPECT_ERROR(TSR_INVALID_INPUT, "inputs[0].name is NULL",
               RUN_ONE(NULL, TSR_INT64, shape, 2, ids, 32));
  /* Checked by the runner against the manifest: names, dtypes, token id range. */
  EXPECT_ERROR(TSR_INVALID_INPUT, "pixel_values",
               RUN_ONE("pixel_values", TSR_INT64, shape, 2, ids, 32));
  EXPECT_ERROR(TSR_INVALID_INPUT, "input_ids",
               RUN_ONE("input_ids", TSR_FLOAT32, shape, 2, floats, 16));
  EXPECT_ERROR(TSR_INVALID_INPUT, "40000",
               RUN_ONE("input_ids", TSR_INT64, shape, 2, out_of_vocabulary, 32));
#undef RUN_ONE
  const tsr_tensor twice[] = {{"input_ids", TSR_INT64, shape, 2, ids, 32},
                              {"input_ids", TSR_INT64, shape, 2, ids, 32}};
  EXPECT_ERROR(TSR_INVALID_INPUT, "inputs[1] (\"input_ids\") repeats the name",
               tsr_runner_run(runner, twice, 2, &outputs, &error));
  EXPECT_ERROR(TSR_INVALID_INPUT, "inputs is NULL",
               tsr_runner_run(runner, NULL, 1, &outputs, &error));
  CHECK(outputs == NULL);
  /* Still usable after every refusal. */
  CHECK_OK(tsr_runner_run(runner, twice, 1, &outputs, NULL));
  CHECK(tsr_outputs_count(outputs) == 2);
  tsr_outputs_free(outputs);
}

int main(void) {
  char* model = fixture("tiny_bert.pt");
  test_versions();
  test_load_errors(model);
  tsr_runner* runner = load(model);
  test_info(runner);
  test_tokenize(runner, model);
  test_run_matches_predict(runner);
  test_bad_predict_arguments(runner);
  test_bad_run_arguments(runner);
  tsr_runner_free(runner);
  /* Freeing NULL is a no-op for every handle. */
  tsr_runner_free(NULL);
  tsr_runner_options_free(NULL);
  tsr_tokenizer_free(NULL);
  tsr_encoding_free(NULL);
  tsr_predictions_free(NULL);
  tsr_outputs_free(NULL);
  tsr_error_free(NULL);
  free(model);
  if (failures > 0) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("c_api_test: all checks passed\n");
  return 0;
}
