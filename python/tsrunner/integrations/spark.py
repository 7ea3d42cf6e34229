"""Spark batch inference with a tsrunner archive (`pip install tsrunner[spark]`).

    from tsrunner.integrations.spark import map_in_pandas, predict_udf

    embed = predict_udf("model.pt")                  # a pandas UDF (predict_batch_udf)
    df = df.withColumn("embedding", embed("text"))
    df = map_in_pandas(df, "model.pt", text_column="text")   # the columns Ray's Predictor adds

The archive is read where `model` points (a path every worker sees) or, when no such file is
there, from the files shipped with `spark.sparkContext.addFile(path)` / `--files` (SparkFiles).
The driver verifies it once before the job (a missing or modified archive raises
tsrunner.LoadError there, once) and pins the workers to that digest. Each Python worker loads
it once (kept across tasks: spark.python.worker.reuse, on by default) with `spark.task.cpus`
intra-op threads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from .. import read_manifest, verify_archive
from ..errors import LoadError
from ..runner import Runner
from . import _batch

# predict_batch_udf can return arrays of numbers and structs of scalars, nothing nested deeper.
UDF_TASKS = ("feature-extraction", "text-classification", "question-answering")


def _local_archive(model: str) -> str:
    """Where this process finds the archive: `model` itself, else the file of that name shipped
    with SparkContext.addFile / --files."""
    if os.path.isfile(model):
        return model
    from pyspark import SparkFiles

    try:
        shipped = SparkFiles.get(os.path.basename(model))
    except Exception:  # no SparkContext or SparkFiles root in this process
        shipped = None
    if shipped and os.path.isfile(shipped):
        return shipped
    raise LoadError(
        f"{model}: no such archive here, nor shipped with SparkContext.addFile / --files; "
        "put it on a path every worker sees or ship it with addFile"
    )


def _task_cpus() -> int:
    from pyspark import TaskContext

    context = TaskContext.get()
    return max(1, int(context.cpus())) if context is not None else 1


def _checked_on_driver(model: str | os.PathLike[str], options: dict[str, Any]) -> tuple[str, str]:
    """(where workers look for the archive, its task), once verified here; `options` gets
    pinned to the digest checked. A file here is passed on as an absolute path (Python workers
    run in another directory); anything else is looked up in SparkFiles by name."""
    model = os.fspath(model)
    path = _local_archive(model)
    digest = verify_archive(path, expected_sha256=options.get("expected_sha256"))
    options["expected_sha256"] = digest
    where = os.path.abspath(model) if os.path.isfile(model) else model
    return where, read_manifest(path)["task"]


def _worker_runner(model: str, threads: int | None, options: dict[str, Any]) -> Runner:
    return _batch.load_runner(_local_archive(model), threads or _task_cpus(), options)


def _spark_type(arrow_type: pa.DataType):
    from pyspark.sql import types as T

    if pa.types.is_string(arrow_type):
        return T.StringType()
    if pa.types.is_float32(arrow_type):
        return T.FloatType()
    if pa.types.is_int64(arrow_type):
        return T.LongType()
    if pa.types.is_list(arrow_type) or pa.types.is_fixed_size_list(arrow_type):
        return T.ArrayType(_spark_type(arrow_type.value_type))
    if pa.types.is_struct(arrow_type):
        return T.StructType(
            [T.StructField(f.name, _spark_type(f.type)) for f in arrow_type]  # type: ignore[attr-defined]
        )
    raise AssertionError(arrow_type)


def output_schema(task: str):
    """The Spark schema of the columns a `task` export adds (map_in_pandas)."""
    from pyspark.sql import types as T

    return T.StructType(
        [T.StructField(name, _spark_type(t)) for name, t in _batch.output_types(task).items()]
    )


def predict_udf(
    model: str | os.PathLike[str],
    *,
    batch_size: int = 256,
    threads: int | None = None,
    predict_batch_size: int = 32,
    top_k: int | None = None,
    prompt_name: str | None = None,
    **runner_options: Any,
):
    """A pandas UDF (pyspark.ml.functions.predict_batch_udf) answering with the export's task:
    feature-extraction an array<float> embedding (Runner.predict's floats),
    text-classification a struct<label, score>, question-answering a struct<text, score,
    start, end> (call it with the question and the context columns). `batch_size` rows go to
    each predict call, sorted by length there in `predict_batch_size` forward passes; a null or
    non-string text fails the task naming the row. Token-classification and fill-mask answers
    nest deeper than predict_batch_udf allows: use map_in_pandas for those."""
    from pyspark.ml.functions import predict_batch_udf

    path, task = _checked_on_driver(model, runner_options)
    _batch.check_task(task)
    if task not in UDF_TASKS:
        raise ValueError(
            f"predict_udf cannot return {task} answers (nested lists of structs): use "
            "tsrunner.integrations.spark.map_in_pandas"
        )
    predict_options: dict[str, Any] = {"batch_size": predict_batch_size, "top_k": top_k}
    if prompt_name is not None:
        predict_options["prompt_name"] = prompt_name

    return_type = output_schema(task)
    if len(return_type.fields) == 1:  # one column: the embedding array, or the answer struct
        return_type = return_type.fields[0].dataType

    def answer(texts: np.ndarray, pairs: np.ndarray | None, runner: Runner):
        text_list = _batch.text_list(texts, "the UDF's text column")
        pair_list = None if pairs is None else _batch.text_list(pairs, "the UDF's context column")
        predictions = runner.predict(text_list, pair_list, **predict_options)
        columns = _batch.prediction_columns(task, predictions)
        if task == "feature-extraction":
            embedding = columns["embedding"]
            return embedding.values.to_numpy().reshape(len(embedding), embedding.type.list_size)
        if task == "question-answering":  # a struct column: one array per field
            answers = columns["answer"]
            columns = {f.name: answers.field(f.name) for f in answers.type}
        return {name: np.array(array.to_pylist(), dtype=object) for name, array in columns.items()}

    def make_predict_fn():
        runner = _worker_runner(path, threads, runner_options)
        if task == "question-answering":
            return lambda questions, contexts: answer(questions, contexts, runner)
        return lambda texts: answer(texts, None, runner)

    return predict_batch_udf(make_predict_fn, return_type=return_type, batch_size=batch_size)


def map_in_pandas(
    df,
    model: str | os.PathLike[str],
    *,
    text_column: str = "text",
    pair_column: str | None = None,
    threads: int | None = None,
    batch_size: int = 32,
    top_k: int | None = None,
    prompt_name: str | None = None,
    **runner_options: Any,
):
    """`df` with the task's columns added through DataFrame.mapInPandas: the same columns as
    tsrunner.integrations.ray.Predictor (an embedding is array<float>), every input column kept.
    Rows go in Arrow batches of spark.sql.execution.arrow.maxRecordsPerBatch (10,000 by
    default), each sorted by length into forward passes of `batch_size`."""
    path, task = _checked_on_driver(model, runner_options)
    _batch.check_task(task)
    _batch.check_pair(task, pair_column)
    _batch.check_no_clash(df.columns, task)
    for column in (text_column, pair_column):
        if column is not None and column not in df.columns:
            raise ValueError(f"the DataFrame has no column {column!r} (columns: {df.columns})")
    predict_options: dict[str, Any] = {"batch_size": batch_size, "top_k": top_k}
    if prompt_name is not None:
        predict_options["prompt_name"] = prompt_name

    def predict_batches(batches: Iterator[Any]) -> Iterator[Any]:
        runner = _worker_runner(path, threads, runner_options)
        for batch in batches:
            texts = _batch.text_list(batch[text_column].to_numpy(), f"column {text_column!r}")
            pairs = None
            if pair_column is not None:
                pairs = _batch.text_list(batch[pair_column].to_numpy(), f"column {pair_column!r}")
            predictions = runner.predict(texts, pairs, **predict_options)
            columns = _batch.prediction_columns(task, predictions)
            for name, array in columns.items():
                # Positional values, not a Series (whose index would be aligned): an embedding
                # as one float32 array per row, nested answers as Python lists and dicts.
                embedding = name == "embedding"
                batch[name] = array.to_pandas().to_numpy() if embedding else array.to_pylist()
            yield batch

    from pyspark.sql import types as T

    schema = T.StructType(df.schema.fields + output_schema(task).fields)
    return df.mapInPandas(predict_batches, schema)
