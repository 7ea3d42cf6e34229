/* tsrunner's C API: a stable, C11-clean ABI over libtsrunner for C and for language bindings
 * (Rust, Go, C#, Java, Python's ctypes). No C++ type or exception crosses it. docs/c-api.md has
 * the rules in full; in short:
 *
 * - Handles are opaque. Whatever a tsr_*_create/load/encode/predict/run call hands out through
 *   an out-parameter is the caller's, freed with the matching tsr_*_free (NULL is a no-op).
 *   Pointers returned by accessors (strings, arrays, tensor data) are owned by the handle they
 *   came from and stay valid until that handle is freed.
 * - Every fallible call returns a tsr_status and, when `error` is not NULL, sets *error to NULL
 *   on success or to an error object the caller frees with tsr_error_free. The message is one
 *   line and names the offending argument ("tsr_runner_run: inputs[0].shape[1] is 0, ...").
 * - A tsr_runner may be used by many threads at once; result handles are immutable and may be
 *   read from any thread; a tsr_runner_options is a builder for one thread.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "tsrunner/export.h"         /* TSR_API */
#include "tsrunner/version_macros.h" /* TSRUNNER_VERSION_MAJOR/MINOR/PATCH/STRING */

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI version of this header. Bumped on every change that breaks code compiled against an
 * older header (a function removed or its signature changed, a struct's layout or an enum
 * value changed); functions added keep it. Compare with tsr_abi_version() at start-up. */
#define TSR_ABI_VERSION 1

/* How a call ended. Codes are stable; new ones may be added. */
typedef enum tsr_status {
  TSR_OK = 0,
  TSR_INVALID_INPUT = 1, /* an argument is wrong (NULL, out of range, breaks the contract) */
  TSR_LOAD_ERROR = 2,    /* the file is missing, not a tsrunner export, or fails a check */
  TSR_ERROR = 3,         /* anything else: the model failed while running, ... */
  TSR_OUT_OF_MEMORY = 4
} tsr_status;

/* Element types of tensors (tsr_tensor.dtype). Zero is never a valid type. */
typedef enum tsr_dtype {
  TSR_INT64 = 1,
  TSR_FLOAT32 = 2,
  TSR_INT32 = 3,
  TSR_FLOAT64 = 4,
  TSR_FLOAT16 = 5,
  TSR_BFLOAT16 = 6,
  TSR_BOOL = 7, /* one byte per element, 0 or 1 */
  TSR_UINT8 = 8,
  TSR_INT8 = 9
} tsr_dtype;

/* The most dimensions a tensor may have. */
#define TSR_MAX_RANK 16

typedef struct tsr_error tsr_error;
typedef struct tsr_runner_options tsr_runner_options;
typedef struct tsr_runner tsr_runner;
typedef struct tsr_tokenizer tsr_tokenizer;
typedef struct tsr_encoding tsr_encoding;
typedef struct tsr_predictions tsr_predictions;
typedef struct tsr_outputs tsr_outputs;

/* A dense, row-major tensor in host memory: an input the caller owns, or an output view whose
 * pointers belong to the tsr_outputs it came from. Its layout is part of the ABI. */
typedef struct tsr_tensor {
  const char* name;     /* NUL-terminated */
  int32_t dtype;        /* a tsr_dtype */
  const int64_t* shape; /* `rank` dimensions, each at least 1 */
  size_t rank;          /* 1 to TSR_MAX_RANK */
  const void* data;     /* product(shape) elements of dtype, any alignment */
  size_t data_bytes;    /* must equal product(shape) * tsr_dtype_size(dtype) */
} tsr_tensor;

/* ---- versions and errors (never fail) ---- */

/* The library's version, e.g. "0.1.0" (static storage). */
TSR_API const char* tsr_version(void);
/* The TSR_ABI_VERSION the library was built with. */
TSR_API int32_t tsr_abi_version(void);
/* "OK", "INVALID_INPUT", "LOAD_ERROR", "ERROR", "OUT_OF_MEMORY"; "UNKNOWN" otherwise. */
TSR_API const char* tsr_status_name(tsr_status status);
/* Bytes per element of a tsr_dtype, 0 for a value that is not one. */
TSR_API size_t tsr_dtype_size(int32_t dtype);

/* The status an error carries (TSR_OK for NULL). */
TSR_API tsr_status tsr_error_status(const tsr_error* error);
/* Its one-line message ("" for NULL), valid until tsr_error_free. */
TSR_API const char* tsr_error_message(const tsr_error* error);
TSR_API void tsr_error_free(tsr_error* error);

/* Nonzero when the library and this header agree on the ABI. */
static inline int tsr_abi_matches(void) { return tsr_abi_version() == TSR_ABI_VERSION; }

/* ---- runner options (RunnerOptions in docs/cpp-api.md; each setter checks its value) ---- */

TSR_API tsr_status tsr_runner_options_create(tsr_runner_options** out, tsr_error** error);
TSR_API void tsr_runner_options_free(tsr_runner_options* options);
/* Intra-op threads, 0 (LibTorch's default) to 1024. */
TSR_API tsr_status tsr_runner_options_set_threads(tsr_runner_options* options, int32_t threads,
                                                  tsr_error** error);
/* Inter-op threads, 0 to 1024; process-wide and settable once per process. */
TSR_API tsr_status tsr_runner_options_set_interop_threads(tsr_runner_options* options,
                                                          int32_t threads, tsr_error** error);
/* The kernel path: "auto" (default), "onednn" or "default". */
TSR_API tsr_status tsr_runner_options_set_kernel_path(tsr_runner_options* options,
                                                      const char* kernel_path, tsr_error** error);
/* Deprecated (ABI 1 keeps it): tsr_runner_options_set_kernel_path under its first name. */
TSR_API tsr_status tsr_runner_options_set_engine(tsr_runner_options* options, const char* engine,
                                                 tsr_error** error);
/* "fp32" (default) or "bf16". */
TSR_API tsr_status tsr_runner_options_set_compute(tsr_runner_options* options, const char* compute,
                                                  tsr_error** error);
/* "cpu" (default) or a LibTorch device string such as "cuda:0". */
TSR_API tsr_status tsr_runner_options_set_device(tsr_runner_options* options, const char* device,
                                                 tsr_error** error);
/* Nonzero (default): recompute the archive's SHA-256 content digest at load. */
TSR_API tsr_status tsr_runner_options_set_verify_integrity(tsr_runner_options* options,
                                                           int32_t verify, tsr_error** error);
/* 64 hex digits the archive's content digest must equal ("" or NULL: no pin). */
TSR_API tsr_status tsr_runner_options_set_expected_sha256(tsr_runner_options* options,
                                                          const char* sha256, tsr_error** error);
/* Runs at load on random inputs, 0 (default) or more. */
TSR_API tsr_status tsr_runner_options_set_warmup_runs(tsr_runner_options* options, int32_t runs,
                                                      tsr_error** error);

/* ---- runner ---- */

/* Loads a tsrunner export (.pt or .pt2; only files you trust: docs/security.md). `options` may
 * be NULL (defaults) and may be freed right after. *out is NULL on failure. */
TSR_API tsr_status tsr_runner_load(const char* path, const tsr_runner_options* options,
                                   tsr_runner** out, tsr_error** error);
/* Frees a runner. No call on it may be in flight (docs/c-api.md). */
TSR_API void tsr_runner_free(tsr_runner* runner);
/* The manifest as stored in the archive (JSON, docs/format.md); NULL for a NULL runner. */
TSR_API const char* tsr_runner_manifest_json(const tsr_runner* runner);
/* The kernel path load chose: "onednn", "default" or "aoti"; NULL for a NULL runner. */
TSR_API const char* tsr_runner_kernel_path(const tsr_runner* runner);
/* Deprecated (ABI 1 keeps it): tsr_runner_kernel_path under its first name. */
TSR_API const char* tsr_runner_engine(const tsr_runner* runner);

/* ---- tokenizer and encodings ---- */

/* A tokenizer from a .pt export (its embedded tokenizer.json) or a tokenizer.json file. */
TSR_API tsr_status tsr_tokenizer_load(const char* path, tsr_tokenizer** out, tsr_error** error);
TSR_API void tsr_tokenizer_free(tsr_tokenizer* tokenizer);
/* Tokenizes UTF-8 `text` (`text_length` bytes; NULL only with length 0) and, when `pair` is
 * not NULL, its pair, with special tokens, truncated to the tokenizer's max length. */
TSR_API tsr_status tsr_tokenizer_encode(const tsr_tokenizer* tokenizer, const char* text,
                                        size_t text_length, const char* pair, size_t pair_length,
                                        tsr_encoding** out, tsr_error** error);
/* The same with the runner's own (verified, embedded) tokenizer; TSR_LOAD_ERROR without one. */
TSR_API tsr_status tsr_runner_encode(const tsr_runner* runner, const char* text, size_t text_length,
                                     const char* pair, size_t pair_length, tsr_encoding** out,
                                     tsr_error** error);
TSR_API void tsr_encoding_free(tsr_encoding* encoding);
/* Tokens in the encoding; every array below has this many entries (offsets twice as many).
 * NULL encodings have length 0 and NULL arrays. */
TSR_API size_t tsr_encoding_length(const tsr_encoding* encoding);
TSR_API const int64_t* tsr_encoding_ids(const tsr_encoding* encoding);
TSR_API const int64_t* tsr_encoding_type_ids(const tsr_encoding* encoding);
TSR_API const int64_t* tsr_encoding_attention_mask(const tsr_encoding* encoding);
/* Byte offsets into the UTF-8 text each token came from, [begin0, end0, begin1, end1, ...];
 * (0, 0) for special tokens. */
TSR_API const int64_t* tsr_encoding_offsets(const tsr_encoding* encoding);
/* The word each token belongs to, -1 for special tokens. */
TSR_API const int64_t* tsr_encoding_word_ids(const tsr_encoding* encoding);
/* Token `index` as a string; NULL when out of range. */
TSR_API const char* tsr_encoding_token(const tsr_encoding* encoding, size_t index);

/* ---- predictions (text in, the task's answer out) ---- */

/* One prediction per text, in order: tokenizes, runs `batch_size` texts at a time (0: 32) and
 * turns the outputs into the export's task's answer. `text_lengths` NULL: every text is
 * NUL-terminated. `pairs` NULL: no pairs (question-answering takes the context as the pair);
 * else `count` of them, with `pair_lengths` as for texts. `texts` may be NULL when count is 0. */
TSR_API tsr_status tsr_runner_predict(const tsr_runner* runner, const char* const* texts,
                                      const size_t* text_lengths, size_t count,
                                      const char* const* pairs, const size_t* pair_lengths,
                                      size_t batch_size, tsr_predictions** out, tsr_error** error);
TSR_API void tsr_predictions_free(tsr_predictions* predictions);
TSR_API size_t tsr_predictions_count(const tsr_predictions* predictions);
/* All predictions as one JSON array (the keys tsrun and Python's Runner.predict give:
 * {"embedding": [...]}, {"labels": [...]}, {"masks": [...]}, {"entities": [...]},
 * {"answer": {...}}); NULL for a NULL handle. */
TSR_API const char* tsr_predictions_json(const tsr_predictions* predictions);
/* Prediction `index` as one JSON object. */
TSR_API tsr_status tsr_predictions_item_json(const tsr_predictions* predictions, size_t index,
                                             const char** json, tsr_error** error);
/* feature-extraction: prediction `index`'s embedding, `*dimension` floats. TSR_INVALID_INPUT
 * when the index is out of range or the export's task has no embedding. */
TSR_API tsr_status tsr_predictions_embedding(const tsr_predictions* predictions, size_t index,
                                             const float** data, size_t* dimension,
                                             tsr_error** error);

/* ---- raw tensors ---- */

/* Runs the model on named inputs (copied in; inputs the manifest gives a default may be left
 * out) and copies every output into `*out`, in the manifest's output order. */
TSR_API tsr_status tsr_runner_run(const tsr_runner* runner, const tsr_tensor* inputs,
                                  size_t input_count, tsr_outputs** out, tsr_error** error);
TSR_API void tsr_outputs_free(tsr_outputs* outputs);
TSR_API size_t tsr_outputs_count(const tsr_outputs* outputs);
/* Fills `*tensor` with output `index`; its pointers belong to `outputs`. */
TSR_API tsr_status tsr_outputs_at(const tsr_outputs* outputs, size_t index, tsr_tensor* tensor,
                                  tsr_error** error);
/* Fills `*tensor` with the output called `name`; TSR_INVALID_INPUT naming it when none is. */
TSR_API tsr_status tsr_outputs_find(const tsr_outputs* outputs, const char* name,
                                    tsr_tensor* tensor, tsr_error** error);

#ifdef __cplusplus
} /* extern "C" */
#endif
