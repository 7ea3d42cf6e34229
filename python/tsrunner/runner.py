"""tsrunner.Runner: the C++ runner plus text in, answers out (predict)."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from . import _core


class Runner(_core.Runner):
    """Loads a tsrunner export and runs it with libtsrunner (C++). Thread-safe.

    `run(dict[str, Tensor])` runs tensors; `predict(texts)` tokenizes with the export's own
    tokenizer (natively), runs and returns the task's answer per text.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, threads: int | None = None, device: str = "cpu"
    ):
        super().__init__(path, threads=threads, device=device)
        self._path = os.fspath(path)
        self._pipeline: _core.Pipeline | None = None
        self._pipeline_lock = threading.Lock()

    def predict(
        self,
        texts: str | Sequence[str],
        text_pairs: str | Sequence[str] | None = None,
        batch_size: int = 32,
    ) -> list[dict[str, Any]]:
        """One dict per text, in order: for feature-extraction {"embedding": [floats]}."""
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
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        with self._pipeline_lock:
            if self._pipeline is None:
                self._pipeline = _core.Pipeline(self, self._path)
        return self._pipeline.predict(texts, text_pairs, batch_size)
