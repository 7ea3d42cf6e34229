"""What the Ray and Spark integrations share: which tasks they answer, the columns each task
writes (as Arrow, so Ray and Spark write the same Parquet), checked text input, and one loaded
Runner per (archive, settings) per worker process."""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from ..runner import Runner

# Tasks Runner.predict answers from text, and the columns each adds to a batch.
_ENTITY = pa.struct(
    [
        ("entity_group", pa.string()),
        ("score", pa.float32()),
        ("word", pa.string()),
        ("start", pa.int64()),
        ("end", pa.int64()),
    ]
)
_CANDIDATE = pa.struct([("token", pa.int64()), ("token_str", pa.string()), ("score", pa.float32())])
_MASK = pa.struct([("position", pa.int64()), ("candidates", pa.list_(_CANDIDATE))])
_ANSWER = pa.struct(
    [("text", pa.string()), ("score", pa.float32()), ("start", pa.int64()), ("end", pa.int64())]
)

OUTPUT_COLUMNS: dict[str, tuple[str, ...]] = {
    "feature-extraction": ("embedding",),
    "text-classification": ("label", "score"),
    "token-classification": ("entities",),
    "fill-mask": ("masks",),
    "question-answering": ("answer",),
}

# Runners kept per worker process (predict_batch_udf keeps 3 models per Python worker too).
_MAX_CACHED_RUNNERS = 3
_runners: collections.OrderedDict[tuple, Runner] = collections.OrderedDict()
_runners_lock = threading.Lock()


def check_task(task: str) -> None:
    """Raises ValueError when the integrations cannot answer `task` from text columns."""
    if task not in OUTPUT_COLUMNS:
        raise ValueError(
            f"a {task!r} export cannot run in a batch job: tsrunner.integrations answers "
            f"{', '.join(OUTPUT_COLUMNS)}"
        )


def check_pair(task: str, pair_column: str | None) -> None:
    if task == "question-answering" and pair_column is None:
        raise ValueError("a question-answering export needs pair_column= (the contexts)")


def load_runner(path: str, threads: int, options: dict[str, Any]) -> Runner:
    """The Runner for `path` with these settings, loaded once per process (and verified then)."""
    key = (os.path.realpath(path), threads, tuple(sorted(options.items())))
    with _runners_lock:
        runner = _runners.get(key)
        if runner is None:
            runner = Runner(path, threads=threads, **options)
            _runners[key] = runner
            while len(_runners) > _MAX_CACHED_RUNNERS:
                _runners.popitem(last=False)
        _runners.move_to_end(key)
        return runner


def text_list(values: Sequence[Any], what: str, ids: Sequence[Any] | None = None) -> list[str]:
    """`values` (the texts of `what`, such as "column 'text'") as a list of str; a null or a
    non-string fails the batch naming the row (and its id), never a silent empty text."""
    texts = values.tolist() if isinstance(values, np.ndarray) else list(values)
    for row, text in enumerate(texts):
        if not isinstance(text, str):
            where = f"row {row} of the batch" + (f" (id {ids[row]!r})" if ids is not None else "")
            got = "null" if text is None or text != text else type(text).__name__
            raise ValueError(f"{what}: {where} is {got}, not a string")
    return texts


def prediction_columns(task: str, predictions: list[dict[str, Any]]) -> dict[str, pa.Array]:
    """Runner.predict's answers as the task's Arrow columns (OUTPUT_COLUMNS)."""
    if task == "feature-extraction":
        # predict's floats are the shortest decimals of float32 results: exact in float32.
        values = np.asarray([p["embedding"] for p in predictions], dtype=np.float32)
        width = values.shape[1] if values.ndim == 2 else 0
        flat = pa.array(values.reshape(-1), type=pa.float32())
        return {"embedding": pa.FixedSizeListArray.from_arrays(flat, width)}
    if task == "text-classification":
        best = [p["labels"][0] for p in predictions]
        return {
            "label": pa.array([b["label"] for b in best], type=pa.string()),
            "score": pa.array([b["score"] for b in best], type=pa.float32()),
        }
    if task == "token-classification":
        return {"entities": pa.array([p["entities"] for p in predictions], pa.list_(_ENTITY))}
    if task == "fill-mask":
        return {"masks": pa.array([p["masks"] for p in predictions], pa.list_(_MASK))}
    if task == "question-answering":
        return {"answer": pa.array([p["answer"] for p in predictions], _ANSWER)}
    raise AssertionError(task)  # check_task ran first


def output_types(task: str) -> dict[str, pa.DataType]:
    """The Arrow type of each column the task adds (an embedding's width is the model's)."""
    types = {
        "feature-extraction": {"embedding": pa.list_(pa.float32())},
        "text-classification": {"label": pa.string(), "score": pa.float32()},
        "token-classification": {"entities": pa.list_(_ENTITY)},
        "fill-mask": {"masks": pa.list_(_MASK)},
        "question-answering": {"answer": _ANSWER},
    }
    return types[task]


def check_no_clash(columns: Sequence[str], task: str) -> None:
    clash = [name for name in OUTPUT_COLUMNS[task] if name in columns]
    if clash:
        raise ValueError(
            f"the input already has column(s) {', '.join(map(repr, clash))}, which a {task} "
            "export writes: rename or drop them first"
        )
