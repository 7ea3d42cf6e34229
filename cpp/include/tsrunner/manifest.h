#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tsrunner/dtype.h"
#include "tsrunner/export.h"
#include "tsrunner/manifest_vocabulary.h"
#include "tsrunner/task.h"

namespace tsrunner {

namespace detail {
struct GenerationSpec;  // libtsrunner's own reading of a "generation" record
}  // namespace detail

// Newest manifest schema this build reads (it reads every older one). Archives written by a
// newer exporter are refused with a LoadError instead of being half-understood. Schema 2 added
// `sentence_embedding`: an older runner would pool the token vectors itself and miss a Dense
// or Normalize module, so those archives must not load there.
inline constexpr int kManifestSchemaVersion = 2;

// Where the manifest lives inside the TorchScript archive (a TorchScript `_extra_files` entry).
inline constexpr const char* kManifestRecord = "tsrunner/manifest.json";
inline constexpr const char* kTokenizerRecord = "tsrunner/tokenizer.json";
inline constexpr const char* kConfigRecord = "tsrunner/config.json";
// The SHA-256 content digest the exporter appends last (see docs/security.md).
inline constexpr const char* kDigestRecord = "tsrunner/digest.json";

// One dimension of a tensor: either symbolic ("batch", "sequence") or a fixed size.
struct TSR_API Dim {
  std::string symbol;  // empty when the size is fixed
  int64_t size = -1;   // -1 when symbolic

  bool is_symbolic() const { return !symbol.empty(); }
  std::string to_string() const;
};

struct TensorSpec {
  std::string name;
  // Inputs only: what the input carries. Archives written before inputs had roles: the role of
  // Hugging Face's name for it ("input_ids" carries token ids, ...), else kNone.
  Role role = Role::kNone;
  DType dtype = DType::kUnknown;  // kUnknown only for a plain module's tensors
  std::vector<Dim> dims;
  // Inputs only: how an input a caller leaves out is filled (kRequired: it may not be left out).
  Fill default_fill = Fill::kRequired;
  // Integer inputs only: the half-open range [low, high) of valid values (token ids within the
  // vocabulary, type ids, 0/1 masks), when the manifest gives one.
  std::optional<std::pair<int64_t, int64_t>> value_range;
};

// Which shapes the export was validated for.
struct ShapeContract {
  ShapeKind kind = ShapeKind::kDynamic;
  int64_t min_batch = 1;
  int64_t max_batch = 0;  // 0: no upper bound was set
  int64_t min_sequence = 1;
  int64_t max_sequence = 0;
  // Sizes of the symbolic dimensions at the trace ("batch", "sequence", "decoder_sequence",
  // ...). A fixed export takes these lengths; the runner pads shorter inputs to them.
  std::map<std::string, int64_t> traced;
  // Bucketed exports: the traced lengths, ascending, each a method "forward_<length>" of one
  // module; the runner pads to the smallest that fits. Empty otherwise.
  std::vector<int64_t> buckets;
};

// How token vectors become one sentence vector (sentence-transformers' Pooling module), as
// schema 1 archives record it; schema 2 traces the whole pipeline (SentenceEmbedding).
struct Pooling {
  PoolingMode mode = PoolingMode::kMean;
  bool normalize = false;
};

// A sentence-transformers model's embedding pipeline (Pooling, Dense, Normalize, ...), traced
// into the graph as one more output and checked against SentenceTransformer.encode at export.
struct TSR_API SentenceEmbedding {
  std::string output;  // the graph output holding the embedding ("sentence_embedding")
  int64_t dimension = 0;
  // Where sentence-transformers truncates texts (may differ from Manifest::max_length, where
  // this export truncates: the exporter warned about it).
  std::optional<int64_t> max_seq_length;
  // Texts put before the input, by name; applied by Pipeline (prompt_name).
  std::map<std::string, std::string> prompts;
  std::string default_prompt_name;  // empty: no prompt unless one is asked for
  // One readable line per module: "Pooling(mean)", "Dense(384->256, Tanh)", "Normalize".
  std::vector<std::string> modules;

  // The prompt text of `name`; an empty name picks the default prompt (or none). Throws
  // InvalidInput for a name the model does not have.
  const std::string& prompt(const std::string& name) const;
};

// What an AOTInductor package's compiled code needs (manifest "aoti"): the runner refuses a CPU
// or a LibTorch that lacks it before loading any of the code.
struct AotiRequirements {
  std::string model_name;              // the package's data/aotinductor/<model_name>/
  std::string isa;                     // "native" (the exporting CPU) or "avx2" (x86-64-v3)
  std::vector<std::string> cpu_isa;    // Inductor's vector ISA ("AVX512", "AVX512_VNNI")
  std::vector<std::string> cpu_flags;  // /proc/cpuinfo flags the code may execute
  std::string torch_version;           // the LibTorch it was compiled against ("2.13.0")
};

// The contract between the exporter (Python) and the runner (C++): read from the archive,
// never guessed. The JSON schema is documented in docs/format.md.
struct TSR_API Manifest {
  int schema_version = 0;
  std::string task;               // as stored ("fill-mask", or a name this build does not know)
  Task task_kind = Task::kOther;  // `task` parsed: what code switches on
  std::string model_type;
  std::string model_class;
  // What executes the archive; kAoti packages have `aoti` saying what they need.
  Backend backend = Backend::kJit;
  std::optional<AotiRequirements> aoti;
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  ShapeContract shape_contract;
  int64_t max_length = 0;
  std::optional<int64_t> vocab_size;
  std::optional<int64_t> type_vocab_size;
  std::optional<int64_t> pad_token_id;
  bool has_tokenizer = false;
  std::optional<Pooling> pooling;  // schema 1 sentence-transformers models only
  std::optional<SentenceEmbedding> sentence_embedding;  // sentence-transformers models
  std::vector<std::string> labels;  // classification tasks: label names by class index
  // text-classification: how scores come from logits. Older archives do not say (nullopt):
  // sigmoid for one label, softmax otherwise (Transformers' pipeline).
  std::optional<ScoreFunction> score_function;
  std::optional<int64_t> mask_token_id;  // fill-mask only
  // text2text: the id a decoder starts from (the model config's), when the manifest gives one.
  std::optional<int64_t> decoder_start_token_id;
  // A generation export's "generation" record (KV-cache methods, cache layout, the model's
  // generation_config defaults), parsed once with the rest; null for exports that do not
  // generate. Its layout is libtsrunner's own: Generator reads it.
  std::shared_ptr<const detail::GenerationSpec> generation;
  std::string raw_json;  // the manifest exactly as stored
  // A TorchScript module without tsrunner's files (a plain torch.jit.trace, as the original
  // "Export to TorchScript" recipe saves it): inputs are forward's arguments by name, in order,
  // with no dtype or dims; outputs are "output_0", ...; no task, shape contract ("unknown"),
  // tokenizer or digest. raw_json is {"plain_module": true, ...} (docs/format.md).
  bool plain_module = false;

  // Throws LoadError naming the field when the JSON is malformed or from a newer schema.
  static Manifest parse(const std::string& json_text);

  // Reads only the manifest record of a TorchScript archive; no TorchScript code is loaded.
  static Manifest read_from_archive(const std::string& path);

  const TensorSpec* find_input(const std::string& name) const;

  // Whether the export generates text (it has a "generation" record): tsrun, serve and
  // Runner.generate take it to Generator.
  bool generates() const { return generation != nullptr; }

  // The input that carries `role`, or nullptr.
  const TensorSpec* find_input_by_role(Role role) const;

  // The output named `name`, or nullptr.
  const TensorSpec* find_output(const std::string& name) const;

  // A readable multi-line summary (what `tsrun info` and `tsrunner info` print).
  std::string describe() const;
};

}  // namespace tsrunner
