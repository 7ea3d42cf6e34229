"""Ray Data batch inference with a tsrunner archive (`pip install tsrunner[ray]`).

    import ray
    from ray.data import ActorPoolStrategy
    from tsrunner.integrations.ray import Predictor

    ds = ray.data.read_parquet("corpus/")
    ds = ds.map_batches(
        Predictor,
        fn_constructor_kwargs={"model": "model.pt", "text_column": "text"},
        compute=ActorPoolStrategy(size=2),
        num_cpus=1,
        batch_size=256,
    )
    ds.write_parquet("embedded/")

`predict(ds, "model.pt", ...)` does the same after checking the archive once on the driver.
"""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa

from .. import verify_archive
from ..runner import Runner
from . import _batch


def _actor_threads() -> int:
    """The CPUs Ray gave this actor (`num_cpus=`), which is also what Ray sets OMP_NUM_THREADS
    to; 1 outside Ray, as Ray does for an actor that asked for none."""
    cpus = None
    try:
        import ray

        if ray.is_initialized():  # else get_runtime_context() would start a local Ray
            cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    except ImportError:
        pass
    if cpus is None:
        cpus = float(os.environ.get("OMP_NUM_THREADS") or 1)
    return max(1, int(cpus))


def _to_table(batch: Any) -> pa.Table:
    if isinstance(batch, pa.Table):
        return batch
    if isinstance(batch, dict):
        from ray.data.block import BlockAccessor  # handles Ray's tensor columns too

        block = BlockAccessor.batch_to_block(batch)
        if isinstance(block, pa.Table):
            return block
        batch = block
    return pa.Table.from_pandas(batch, preserve_index=False)


class Predictor:
    """A callable class for `Dataset.map_batches`: loads the archive once per actor and adds the
    task's columns to every batch, keeping the batch's own columns (ids included).

    Columns added: feature-extraction `embedding` (fixed-size list of float32, as
    `Runner.predict` gives it); text-classification `label`, `score` (the best label);
    token-classification `entities` (list of {entity_group, score, word, start, end});
    fill-mask `masks`; question-answering `answer` ({text, score, start, end}, contexts from
    `pair_column`).

    Batches may come as numpy, pandas or pyarrow; the result is a pyarrow Table. A row whose
    text is null or not a string fails the batch with a ValueError naming the row (and its
    `id_column` value), so the job stops instead of writing a made-up answer.

    Intra-op threads: `threads`, else the actor's `num_cpus` (the count Ray reserved for it).
    `batch_size` is Runner.predict's (rows per forward pass, sorted by length within each Ray
    batch); `top_k`, `prompt_name` are passed to it. Other keywords are Runner options
    (`kernel_path=`, `compute=`, `expected_sha256=`, ...).
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        text_column: str = "text",
        pair_column: str | None = None,
        id_column: str | None = None,
        threads: int | None = None,
        batch_size: int = 32,
        top_k: int | None = None,
        prompt_name: str | None = None,
        **runner_options: Any,
    ):
        self.runner = Runner(model, threads=threads or _actor_threads(), **runner_options)
        self.task = self.runner.manifest["task"]
        _batch.check_task(self.task)
        _batch.check_pair(self.task, pair_column)
        self.text_column = text_column
        self.pair_column = pair_column
        self.id_column = id_column
        self.predict_options = {"batch_size": batch_size, "top_k": top_k}
        if prompt_name is not None:
            self.predict_options["prompt_name"] = prompt_name

    def __call__(self, batch: Any) -> pa.Table:
        table = _to_table(batch)
        _batch.check_no_clash(table.column_names, self.task)
        for column in (self.text_column, self.pair_column, self.id_column):
            if column is not None and column not in table.column_names:
                raise ValueError(
                    f"the batch has no column {column!r} (columns: {', '.join(table.column_names)})"
                )
        ids = table.column(self.id_column).to_pylist() if self.id_column else None
        texts = self._texts(table, self.text_column, ids)
        pairs = None if self.pair_column is None else self._texts(table, self.pair_column, ids)
        predictions = self.runner.predict(texts, pairs, **self.predict_options)
        for name, array in _batch.prediction_columns(self.task, predictions).items():
            table = table.append_column(name, array)
        return table

    @staticmethod
    def _texts(table: pa.Table, column: str, ids: list[Any] | None) -> list[str]:
        return _batch.text_list(table.column(column).to_pylist(), f"column {column!r}", ids)


def predict(
    dataset: Any,
    model: str | os.PathLike[str],
    *,
    text_column: str = "text",
    actors: int = 2,
    threads_per_actor: int = 1,
    batch_size: int = 256,
    **predictor_options: Any,
) -> Any:
    """`dataset.map_batches(Predictor, ...)` with `actors` actors of `threads_per_actor` CPUs
    each and Ray batches of `batch_size` rows, after verifying the archive here, once: a missing
    or modified archive raises tsrunner.LoadError before any actor starts, and the actors are
    pinned to the digest checked here (`expected_sha256`)."""
    from ray.data import ActorPoolStrategy

    path = os.path.abspath(model)  # actors may run in another directory
    digest = verify_archive(path, expected_sha256=predictor_options.get("expected_sha256"))
    predictor_options["expected_sha256"] = digest
    return dataset.map_batches(
        Predictor,
        fn_constructor_kwargs={"model": path, "text_column": text_column, **predictor_options},
        compute=ActorPoolStrategy(size=actors),
        num_cpus=threads_per_actor,
        batch_size=batch_size,
    )
