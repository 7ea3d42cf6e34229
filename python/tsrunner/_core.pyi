# Type stubs for tsrunner._core, the pybind11 module over libtsrunner (cpp/bindings/).
# tests/python/test_stubs.py checks that every public name of the built module is declared here
# and that nothing declared here is missing from it.
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

import torch

__version__: str
torch_version: str
MANIFEST_SCHEMA_VERSION: int
KNOWN_TASKS: list[str]
MAX_CONCURRENT_BATCHES: int
MAX_THREADS: int
# Test hooks and internals for tsrunner's own tests, apart from the product API
# (cpp/bindings/testing_bindings.cc): set_after_verify_hook(hook), stream_pieces(tokenizer, ids,
# stop=[]) -> list[bytes], warp_scores(scores, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0).
_testing: ModuleType

def read_manifest(path: str | os.PathLike[str]) -> str: ...
def read_archive_file(path: str | os.PathLike[str], name: str) -> str | None: ...
def describe_manifest(json_text: str) -> str: ...
def verify_archive(
    path: str | os.PathLike[str],
    *,
    expected_sha256: str | None = None,
    max_archive_bytes: int | None = None,
    max_embedded_file_bytes: int | None = None,
) -> str: ...
def cpu_model() -> str: ...
def auto_kernel_path() -> str: ...

class RunnerOptions:
    threads: int
    interop_threads: int
    device: str
    warmup_runs: int
    warmup_sequence: int
    optimize_graph: bool
    freeze: bool
    kernel_path: str
    compute: str
    fused_attention: str | None
    fused_layer_norm: bool | None
    bf16_kernel: bool | None
    small_gemm_rows: int | None
    max_archive_bytes: int
    max_embedded_file_bytes: int
    verify_integrity: bool
    expected_sha256: str
    def __init__(self) -> None: ...
    def validate(self) -> None: ...

class Encoding:
    @property
    def ids(self) -> list[int]: ...
    @property
    def type_ids(self) -> list[int]: ...
    @property
    def attention_mask(self) -> list[int]: ...
    @property
    def tokens(self) -> list[str]: ...
    @property
    def offsets(self) -> list[tuple[int, int]]: ...
    @property
    def sequence_ids(self) -> list[int]: ...
    @property
    def word_ids(self) -> list[int]: ...
    def __len__(self) -> int: ...

class Tokenizer:
    @staticmethod
    def from_file(path: str | os.PathLike[str]) -> Tokenizer: ...
    @staticmethod
    def from_json(json: str, max_length: int | None = None) -> Tokenizer: ...
    @staticmethod
    def from_str(json: str, max_length: int | None = None) -> Tokenizer:
        """Deprecated: use from_json."""
    def encode(self, text: str, pair: str | None = None) -> Encoding: ...
    def encode_windows(
        self, text: str, pair: str, stride: int, max_length: int | None = None
    ) -> list[Encoding]: ...
    def encode_batch(
        self, texts: list[str], pairs: list[str] | None = None, pad_to: int = 0
    ) -> list[Encoding]: ...
    @property
    def max_length(self) -> int | None: ...
    @property
    def pad_id(self) -> int: ...
    @property
    def vocab_size(self) -> int: ...
    def token_to_id(self, token: str) -> int | None: ...
    def id_to_token(self, id: int) -> str: ...
    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str: ...

class Runner:
    def __init__(self, path: str | os.PathLike[str], options: RunnerOptions = ...) -> None: ...
    def run(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]: ...
    @property
    def options(self) -> RunnerOptions: ...
    @property
    def kernel_path(self) -> str: ...
    @property
    def kernel_path_reason(self) -> str: ...
    @property
    def has_tokenizer(self) -> bool: ...
    @property
    def tokenizer(self) -> Tokenizer: ...
    @property
    def manifest(self) -> dict[str, Any]: ...
    @property
    def input_names(self) -> list[str]: ...
    @property
    def output_names(self) -> list[str]: ...

class Pipeline:
    def __init__(
        self,
        runner: Runner,
        top_k: int | None = None,
        max_answer_length: int = 15,
        doc_stride: int | None = None,
        prompt_name: str | None = None,
    ) -> None: ...
    @staticmethod
    def over(runner: Runner) -> Pipeline: ...
    def predict(
        self,
        texts: list[str],
        text_pairs: list[str] | None = None,
        batch_size: int = 32,
        concurrent_batches: int = 1,
        top_k: int | None = None,
        max_answer_length: int = 15,
        doc_stride: int | None = None,
        prompt_name: str | None = None,
        normalize: bool | None = None,
        truncate: bool | None = None,
    ) -> list[dict[str, Any]]: ...

class RequestQueue:
    @staticmethod
    def over(
        pipeline: Pipeline,
        workers: int = 1,
        max_batch_requests: int = 64,
        max_batch_tokens: int = 16384,
        max_wait_ms: float = 0.0,
        intra_op_threads: int = 0,
    ) -> RequestQueue: ...
    def predict(
        self,
        texts: list[str],
        text_pairs: list[str] | None = None,
        choices: list[list[str]] | None = None,
        batch_size: int = 32,
        top_k: int | None = None,
        max_answer_length: int = 15,
        doc_stride: int | None = None,
        prompt_name: str | None = None,
        normalize: bool | None = None,
        truncate: bool | None = None,
    ) -> list[dict[str, Any]]: ...
    def queue_depth(self) -> int: ...
    def stats(self) -> dict[str, int]: ...
    @property
    def workers(self) -> int: ...
    def stop(self) -> None: ...

class Generator:
    def __init__(self, runner: Runner, max_batch: int = 8) -> None: ...
    @staticmethod
    def over(runner: Runner, max_batch: int = 8) -> Generator: ...
    def generate(
        self,
        prompts: list[str] | list[list[int]],
        params: dict[str, Any],
        on_chunk: Callable[[int, int, str, str | None], bool | None] | None = None,
    ) -> list[dict[str, Any]]: ...

def generation_refusals(manifest_json: str) -> list[str]: ...
