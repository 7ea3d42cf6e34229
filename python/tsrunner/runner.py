"""tsrunner.Runner: the C++ runner plus text in, answers out (predict)."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from . import _core


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


class Runner(_core.Runner):
    """Loads a tsrunner export and runs it with libtsrunner (C++). Thread-safe.

    `run(dict[str, Tensor])` runs tensors; `predict(texts)` tokenizes with the export's own
    tokenizer (natively), runs and returns the task's answer per text.
    """

    def __init__(self, path: str | os.PathLike[str], **options: Any):
        """`options` are RunnerOptions by keyword: threads, device, verify_integrity, ... (see
        docs/cpp-api.md); unknown ones raise TypeError."""
        super().__init__(path, **options)
        self._path = os.fspath(path)
        self._pipelines: dict[tuple[int | None, int], _core.Pipeline] = {}
        self._pipeline_lock = threading.Lock()

    def predict(
        self,
        texts: str | Sequence[str],
        text_pairs: str | Sequence[str] | None = None,
        batch_size: int = 32,
        top_k: int | None = None,
        max_answer_length: int = 15,
        concurrent_batches: int = 1,
        doc_stride: int | None = None,
    ) -> list[dict[str, Any]]:
        """One dict per text, in order, keyed by the export's task (Hugging Face pipeline keys;
        offsets are character offsets into the text, or into the pair for answers):

        - feature-extraction: {"embedding": [floats]}
        - text-classification: {"labels": [{"label", "score"}, ...]} best first; `top_k`
          keeps that many (default all)
        - fill-mask: {"masks": [{"position", "candidates": [{"token", "token_str", "score"}]}]}
          one per mask token; `top_k` candidates each (default 5)
        - token-classification: {"entities": [{"entity_group", "score", "word", "start",
          "end"}]}, B-/I- tags merged as aggregation_strategy="simple"
        - question-answering (question in `texts`, context in `text_pairs`): {"answer":
          {"text", "score", "start", "end"}} with at most `max_answer_length` tokens; a
          context too long for the export is cut into windows of min(max_length, 384) tokens
          sharing `doc_stride` (default min(window // 2, 128)), as Transformers does, and the
          best answer of all windows wins

        The dicts are the JSON that `tsrun` prints for the same input, parsed: floats are the
        shortest decimals of the float32 results, NaN is None.

        `concurrent_batches` > 1 runs that many batches at once, each with this runner's
        `threads`: on short texts `threads=1, concurrent_batches=<cores>` is fastest. Worker
        threads are started once and reused by later calls.
        """
        if isinstance(texts, str):
            texts = [texts]
        if isinstance(text_pairs, str):
            text_pairs = [text_pairs]
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"texts[{i}] must be a str, got {type(text).__name__}")
        if text_pairs is not None:
            text_pairs = list(text_pairs)
            if len(text_pairs) != len(texts):
                raise ValueError(f"got {len(texts)} texts but {len(text_pairs)} text pairs")
            for i, pair in enumerate(text_pairs):
                if not isinstance(pair, str):
                    raise ValueError(f"text_pairs[{i}] must be a str, got {type(pair).__name__}")
        if not _is_positive_int(batch_size):
            raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
        if not _is_int_in(concurrent_batches, 1, _core.MAX_CONCURRENT_BATCHES):
            raise ValueError(
                f"concurrent_batches must be an int from 1 to {_core.MAX_CONCURRENT_BATCHES}, "
                f"not {concurrent_batches!r}"
            )
        if top_k is not None and not _is_positive_int(top_k):
            raise ValueError(f"top_k must be a positive int or None, not {top_k!r}")
        if not _is_positive_int(max_answer_length):
            raise ValueError(f"max_answer_length must be a positive int, not {max_answer_length!r}")
        if doc_stride is not None and not _is_int_in(doc_stride, 0, 2**31 - 1):
            raise ValueError(
                f"doc_stride must be an int from 0 to 2**31-1 or None, not {doc_stride!r}"
            )
        key = (top_k, max_answer_length, doc_stride)
        with self._pipeline_lock:
            pipeline = self._pipelines.get(key)
            if pipeline is None:
                pipeline = _core.Pipeline(self, self._path, top_k, max_answer_length, doc_stride)
                self._pipelines[key] = pipeline
        return pipeline.predict(texts, text_pairs, batch_size, concurrent_batches)
