#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "tsrunner/export.h"

// How a Runner loads and runs an export: a leaf header (no LibTorch, no other tsrunner header),
// so code that only passes options around does not pull in the Runner.

namespace tsrunner {

// The most intra-op or inter-op threads RunnerOptions accepts. A fixed bound rather than a
// multiple of this machine's cores, so that options valid on one machine are valid on all; far
// above any useful count (more threads than cores only adds contention), and far below the counts
// that make LibTorch's OpenMP fail to start its threads or crash (20000 and 100000 did here).
inline constexpr int kMaxThreads = 1024;

struct TSR_API RunnerOptions {
  // Intra-op threads of this runner's calls, 0 to kMaxThreads. Each run() (and the load) sets
  // the calling thread's OpenMP thread count to it and restores the caller's afterwards: OpenMP
  // keeps the count per thread, so runners with different counts share a process (and threads)
  // without changing each other or LibTorch's default for new threads. 0 keeps the calling
  // thread's count (LibTorch's default unless the caller set one).
  int threads = 0;
  // Inter-op threads for LibTorch (parallel branches of a graph), 0 to kMaxThreads. 0 keeps
  // LibTorch's default.
  // Process-wide and settable once per process, before the first inter-op work; a later
  // different value is refused with InvalidInput rather than ignored.
  int interop_threads = 0;
  // "cpu" or a LibTorch device string such as "cuda:0".
  std::string device = "cpu";
  // Runs at load time on random inputs of batch 1 and `warmup_sequence` tokens, so the graph
  // executor's profiling runs (the slow first calls) happen before the first real request.
  int warmup_runs = 0;
  int warmup_sequence = 16;
  // The TorchScript graph executor's optimisations (profiling, fusion). LibTorch keeps this
  // switch per thread (torch::jit::setGraphExecutorOptimize); the runner sets it for each of
  // its own calls and restores the caller's, so runners with different settings can share
  // threads. Off: every call runs the graph as traced, no profiling runs, first call as fast as
  // the rest; see docs/benchmarks.md for what it costs.
  bool optimize_graph = true;
  // torch::jit::freeze (inline parameters as constants) and then
  // torch::jit::optimize_for_inference. Off by default: measured slower for MiniLM here
  // (docs/benchmarks.md).
  bool freeze = false;
  // The kernel path: which kernels run the model on the CPU. ("Engine" names the executor,
  // TorchScript or AOTInductor, which the archive decides: Manifest::backend.) "onednn" freezes the
  // module at load and runs its float32 Linear layers on oneDNN's GEMM with weights packed at load
  // for this CPU (never stored packed), Linear layers reading one input (Q/K/V) merged into one
  // GEMM, GELU and residual adds folded into it; "default" runs the graph as exported (LibTorch's
  // aten::linear, which calls MKL's sgemm: its AVX2 code on AMD CPUs). "auto" takes oneDNN on
  // x86-64 CPUs with AVX2 or better when the device is the CPU (docs/benchmarks.md has the
  // measurements). If the rewritten graph fails its check run at load, the runner keeps the plain
  // graph and prints one line on stderr. Runner::kernel_path() says which path was taken.
  std::string kernel_path = "auto";
  // "fp32" (the default) or "bf16", an opt-in for float32 archives: at load the oneDNN kernel path
  // converts the Linear weights to bfloat16 and packs them, and each of those GEMMs rounds its
  // input to bf16 and accumulates in float32 (LayerNorm, softmax and the residual stream stay
  // float32). Faster (half the weight bytes, bf16 instructions), and less exact: MiniLM's
  // sentence embeddings kept cosine >= 0.99996 to float32's on 2,000 real sentences
  // (docs/benchmarks.md). Never the default. Refused
  // with InvalidInput on a CPU without AVX512_BF16 or AMX-BF16 (where oneDNN would emulate bf16,
  // slower than fp32), with kernel path "default", off the CPU, and for AOTInductor packages.
  std::string compute = "fp32";

  // tsrunner's own kernels on the oneDNN kernel path, per runner (two runners in one process may
  // differ). Unset: the TSR_* environment variable of the same name, read at load
  // (docs/environment.md), else the default in brackets.
  // Short-sequence attention: "on" (tsrunner::attention reading Q/K/V in place from the merged
  // GEMM's output), "op" (the kernel on LibTorch's views), "off" (LibTorch's attention) ["on"].
  std::optional<std::string> fused_attention;
  std::optional<bool> fused_layer_norm;  // layer norms of few rows on tsrunner's kernel [true]
  // compute=bf16 GEMMs on tsrunner's AVX512-BF16 kernel where the CPU has it; false: oneDNN's
  // bf16 GEMM [true].
  std::optional<bool> bf16_kernel;
  // float32 Linear calls of at most this many rows (batch x tokens) on the small-row AVX-512
  // kernel, which keeps a second copy of the weights; 0: never [48].
  std::optional<int64_t> small_gemm_rows;

  // Checked before anything is deserialised (docs/security.md):
  // the archive's size on disk, and the sum of its records' declared (uncompressed) sizes.
  uint64_t max_archive_bytes = uint64_t{64} << 30;  // 64 GiB
  // Each embedded file (manifest, tokenizer.json, config.json, the digest record).
  uint64_t max_embedded_file_bytes = uint64_t{256} << 20;  // 256 MiB
  // Recompute the archive's SHA-256 content digest and refuse a file whose records changed
  // after export. Turning it off skips a read of the whole file; it is never needed for safety.
  bool verify_integrity = true;
  // When not empty (64 hex digits, obtained from a source you trust): the archive's content
  // digest must equal it. This, not the digest inside the file, is what detects a file an
  // attacker re-sealed.
  std::string expected_sha256;

  // Throws InvalidInput when an option is out of range.
  void validate() const;
};

}  // namespace tsrunner
