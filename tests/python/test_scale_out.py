"""tsrunner.integrations on local clusters: Ray (`ray.init(num_cpus=2)`, 2 actors) and Spark
(`local[2]`), reading Parquet of real sentences and writing Parquet.

Smoke size by default (`make test`); `make test-cluster` sets TSR_CLUSTER_FULL=1: thousands of
sentences through all-MiniLM-L6-v2 instead of a tiny BERT."""

from __future__ import annotations

import functools
import os
import pickle
import signal
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import scale_out_cluster as cluster
import tsrunner
from archive_tools import flip_byte
from conftest import tiny_models
from tsrunner.integrations import _batch
from tsrunner.integrations import ray as tsr_ray
from tsrunner.integrations import spark as tsr_spark

FULL = os.environ.get("TSR_CLUSTER_FULL") == "1"
# What `make test` leaves to `make test-cluster` (each Ray job costs ~15 s of actor start-up).
full_only = pytest.mark.cluster_full
ROWS = 4000 if FULL else 2000
# The texts of classification and token-classification jobs: answers differ little per text.
TASK_ROWS = 600


@pytest.fixture(scope="module")
def embedder(request) -> Path:
    return request.getfixturevalue("minilm_pt" if FULL else "tiny_bert_pt")


def _tiny_export(task: str, workdir: Path, minilm_dir: Path) -> Path:
    directory = tiny_models.make_model(
        "BERT", task, workdir / task, tokenizer_source=minilm_dir, seed=1
    )
    path = workdir / f"{task}.pt"
    tsrunner.export(directory, path, max_length=64)
    return path


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, minilm_dir) -> Path:
    return _tiny_export("text-classification", tmp_path_factory.mktemp("cls"), minilm_dir)


@pytest.fixture(scope="module")
def tagger(tmp_path_factory, minilm_dir) -> Path:
    return _tiny_export("token-classification", tmp_path_factory.mktemp("ner"), minilm_dir)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return cluster.write_corpus(tmp_path_factory.mktemp("corpus") / "in", ROWS)


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> Path:
    return cluster.write_corpus(tmp_path_factory.mktemp("corpus") / "small", TASK_ROWS, files=2)


# Runner.predict's answers depend on which texts share a forward pass (padding lengths change
# the kernels' summation order in the last bits): the bit-for-bit comparisons run one text per
# forward pass on both sides, so no answer depends on how Ray or Spark cut the batches.
ALONE = 1


def expected(path: Path, texts: list[str], threads: int = 1) -> list[dict]:
    """Runner.predict's answers at the workers' engine settings (one intra-op thread, one text
    per forward pass)."""
    return tsrunner.Runner(path, threads=threads).predict(texts, batch_size=ALONE)


def float32_answers(value):
    """predict()'s answers with every float as the float32 the columns hold."""
    if isinstance(value, float):
        return float(np.float32(value))
    if isinstance(value, dict):
        return {k: float32_answers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [float32_answers(v) for v in value]
    return value


def assert_every_row_once(table: pa.Table, rows: int) -> dict[int, dict]:
    """The output's rows by id, after checking each input id appears exactly once and keeps its
    own text."""
    ids = table.column("id").to_pylist()
    assert len(ids) == rows, f"{len(ids)} rows out for {rows} in"
    assert sorted(ids) == list(range(rows)), "a row was lost or written twice"
    by_id = {row["id"]: row for row in table.to_pylist()}
    source = cluster.corpus_table(rows).to_pylist()
    assert all(by_id[row["id"]]["text"] == row["text"] for row in source), "an id lost its text"
    return by_id


@functools.lru_cache(maxsize=4)
def reference_embeddings(model: Path, rows: int) -> np.ndarray:
    """The corpus' embeddings from expected(), in corpus order (computed once per model)."""
    want = expected(model, [row["text"] for row in cluster.corpus_table(rows).to_pylist()])
    return np.asarray([w["embedding"] for w in want], dtype=np.float32)


def assert_embeddings_bit_equal(by_id: dict[int, dict], model: Path, rows: int) -> None:
    source = cluster.corpus_table(rows).to_pylist()
    got = np.asarray([by_id[row["id"]]["embedding"] for row in source], dtype=np.float32)
    reference = reference_embeddings(model, rows)
    assert got.shape == reference.shape
    assert got.tobytes() == reference.tobytes(), (
        f"max |diff| {np.abs(got - reference).max()} on {(got != reference).any(1).sum()} rows"
    )


def assert_embeddings_close(by_id: dict[int, dict], model: Path, rows: int) -> None:
    """For jobs run at the default batch sizes: equal but for the last bits of some floats."""
    source = cluster.corpus_table(rows).to_pylist()
    want = tsrunner.Runner(model, threads=1).predict([row["text"] for row in source])
    got = np.asarray([by_id[row["id"]]["embedding"] for row in source], dtype=np.float32)
    np.testing.assert_allclose(got, [w["embedding"] for w in want], rtol=0, atol=1e-6)


# -- no cluster needed ---------------------------------------------------------------------------


def test_pickling_a_runner_says_to_pass_the_path(tiny_bert_pt):
    runner = tsrunner.Runner(tiny_bert_pt)
    with pytest.raises(TypeError) as raised:
        pickle.dumps(runner)
    message = str(raised.value)
    assert "\n" not in message
    assert "cannot be pickled" in message and str(tiny_bert_pt) in message


def test_predictor_refuses_bad_rows_naming_them(tiny_bert_pt):
    predictor = tsr_ray.Predictor(tiny_bert_pt, id_column="id", threads=1)
    good = predictor({"id": np.array([1, 2]), "text": np.array(["a b", "c d"], dtype=object)})
    assert good.column_names == ["id", "text", "embedding"]
    assert pa.types.is_fixed_size_list(good.schema.field("embedding").type)
    for bad, got in ((None, "null"), (7, "int"), (float("nan"), "null")):
        batch = {"id": np.array([10, 11]), "text": np.array(["fine", bad], dtype=object)}
        with pytest.raises(
            ValueError, match=rf"column 'text': row 1 of the batch \(id 11\) is {got}"
        ):
            predictor(batch)
    with pytest.raises(ValueError, match="no column 'text'"):
        predictor({"body": np.array(["x"], dtype=object)})
    with pytest.raises(ValueError, match="already has column"):
        predictor({"text": np.array(["x"], dtype=object), "embedding": np.array([1.0])})


@full_only
def test_predictor_needs_a_task_it_can_answer(tmp_path, minilm_dir):
    qa = _tiny_export("question-answering", tmp_path, minilm_dir)
    with pytest.raises(ValueError, match="needs pair_column"):
        tsr_ray.Predictor(qa, threads=1)
    predictor = tsr_ray.Predictor(qa, pair_column="context", threads=1)
    table = predictor(
        {"text": ["Who wrote it?"], "context": ["It was written by the Python developers."]}
    )
    answer = table.column("answer")[0].as_py()
    want = tsrunner.Runner(qa, threads=1).predict(
        ["Who wrote it?"], ["It was written by the Python developers."]
    )[0]["answer"]
    assert answer == float32_answers(want)


def test_predictor_outside_ray_takes_omp_num_threads(tiny_bert_pt, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert tsr_ray.Predictor(tiny_bert_pt).runner.options.threads == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert tsr_ray.Predictor(tiny_bert_pt).runner.options.threads == 1


def test_runners_are_loaded_once_per_process(tiny_bert_pt):
    first = _batch.load_runner(str(tiny_bert_pt), 1, {})
    assert _batch.load_runner(str(tiny_bert_pt), 1, {}) is first
    assert _batch.load_runner(str(tiny_bert_pt), 2, {}) is not first


# -- Ray -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_bert_pt, small_corpus) -> Path:
    """What docs/scale-out.md's examples expect in the current directory: model.pt, corpus/."""
    directory = tmp_path_factory.mktemp("workspace")
    (directory / "model.pt").symlink_to(tiny_bert_pt)
    (directory / "corpus").symlink_to(small_corpus)
    return directory


@pytest.fixture(scope="module")
def ray_cluster(workspace):
    # Ray's workers start in the driver's directory at ray.init: the examples' relative paths
    # must mean the same to the actors as to the driver.
    cwd = os.getcwd()
    os.chdir(workspace)
    try:
        ray = cluster.start_ray()
        # Test-only Predictor subclasses below travel to the actors by value.
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        yield ray
        ray.shutdown()
    finally:
        os.chdir(cwd)


def run_doc_example(name: str, directory: Path) -> None:
    cwd = os.getcwd()
    os.chdir(directory)
    try:
        exec(compile(cluster.doc_example(name), f"docs/scale-out.md ({name})", "exec"), {})
    finally:
        os.chdir(cwd)


@full_only
def test_docs_ray_examples(ray_cluster, workspace):
    for name, out in (("ray", "embedded"), ("ray-helper", "embedded-helper")):
        run_doc_example(name, workspace)
        table = pq.read_table(workspace / out)
        assert pa.types.is_fixed_size_list(table.schema.field("embedding").type)
        by_id = assert_every_row_once(table, TASK_ROWS)
        assert_embeddings_close(by_id, workspace / "model.pt", TASK_ROWS)


@full_only
def test_ray_embeds_every_row_once_bit_equal(ray_cluster, corpus, embedder, tmp_path):
    ray = ray_cluster
    out = tmp_path / "out"
    ds = ray.data.read_parquet(str(corpus), override_num_blocks=8)
    ds = ds.map_batches(
        tsr_ray.Predictor,
        fn_constructor_kwargs={
            "model": str(embedder),
            "text_column": "text",
            "id_column": "id",
            "batch_size": ALONE,
        },
        compute=ray.data.ActorPoolStrategy(size=2),
        num_cpus=1,
        batch_size=256,
        batch_format="numpy",
    )
    ds.write_parquet(str(out))
    table = pq.read_table(out)
    field = table.schema.field("embedding")
    assert pa.types.is_fixed_size_list(field.type) and field.type.value_type == pa.float32()
    by_id = assert_every_row_once(table, ROWS)
    assert_embeddings_bit_equal(by_id, embedder, ROWS)


class ThreadReportingPredictor(tsr_ray.Predictor):
    """Adds the intra-op thread count its Runner was given, and Ray's OMP_NUM_THREADS."""

    def __call__(self, batch):
        table = super().__call__(batch)
        rows = table.num_rows
        table = table.append_column("threads", pa.array([self.runner.options.threads] * rows))
        omp = int(os.environ.get("OMP_NUM_THREADS", "0"))
        return table.append_column("omp", pa.array([omp] * rows))


@pytest.mark.parametrize(
    "task",
    [pytest.param(t, marks=full_only) for t in ("text-classification", "token-classification")],
)
def test_ray_classifies_from_pandas_batches(ray_cluster, small_corpus, task, request):
    ray = ray_cluster
    model = request.getfixturevalue("classifier" if task == "text-classification" else "tagger")
    ds = ray.data.read_parquet(str(small_corpus), override_num_blocks=4).map_batches(
        ThreadReportingPredictor,
        fn_constructor_kwargs={"model": str(model), "batch_size": ALONE},
        compute=ray.data.ActorPoolStrategy(size=1),
        num_cpus=2,  # one actor with both CPUs: its Runner must take 2 threads
        batch_size=128,
        batch_format="pandas",
    )
    table = pa.Table.from_pandas(ds.to_pandas(), preserve_index=False)
    by_id = assert_every_row_once(table, TASK_ROWS)
    assert set(table.column("threads").to_pylist()) == {2}
    assert set(table.column("omp").to_pylist()) == {2}
    texts = [row["text"] for row in cluster.corpus_table(TASK_ROWS).to_pylist()]
    ids = cluster.corpus_table(TASK_ROWS).column("id").to_pylist()
    want = expected(model, texts, threads=2)
    for row_id, answer in zip(ids, want, strict=True):
        row = by_id[row_id]
        if task == "text-classification":
            best = float32_answers(answer["labels"][0])
            assert (row["label"], row["score"]) == (best["label"], best["score"])
        else:
            assert list(row["entities"]) == float32_answers(answer["entities"])
    if task == "token-classification":
        assert sum(len(row["entities"]) for row in by_id.values()) > 0


class DyingPredictor(tsr_ray.Predictor):
    """Kills its own actor process (SIGKILL) at its second batch, once in the whole job."""

    def __init__(self, *, marker: str, **options):
        super().__init__(**options)
        self.marker = marker
        self.calls = 0

    def __call__(self, batch):
        self.calls += 1
        if self.calls == 2:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return super().__call__(batch)


def test_ray_actor_killed_mid_job_every_row_once(ray_cluster, corpus, embedder, tmp_path):
    ray = ray_cluster
    marker = tmp_path / "killed"
    ds = ray.data.read_parquet(str(corpus), override_num_blocks=8).map_batches(
        DyingPredictor,
        fn_constructor_kwargs={"model": str(embedder), "marker": str(marker), "batch_size": ALONE},
        compute=ray.data.ActorPoolStrategy(size=2),
        num_cpus=1,
        batch_size=128,
    )
    table = pa.Table.from_pandas(ds.to_pandas(), preserve_index=False)
    assert marker.exists(), "no actor was killed"
    by_id = assert_every_row_once(table, ROWS)
    assert_embeddings_bit_equal(by_id, embedder, ROWS)


DIGEST_ERROR = "was modified after export"


@pytest.fixture(scope="module")
def tampered(tiny_bert_pt, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tampered") / "tampered.pt"
    flip_byte(tiny_bert_pt, path, "data.pkl", index=10)
    return path


def test_ray_helper_refuses_a_tampered_archive_once(ray_cluster, small_corpus, tampered):
    # The helper checks on the driver: one LoadError, before any actor starts.
    ds = ray_cluster.data.read_parquet(str(small_corpus))
    with pytest.raises(tsrunner.LoadError, match=DIGEST_ERROR):
        tsr_ray.predict(ds, tampered)


@full_only
def test_ray_tampered_archive_fails_the_job_once(ray_cluster, small_corpus, tampered):
    # Predictor straight into map_batches: the actors refuse to load it and the job fails with
    # the same one-line error (no row is run).
    ray = ray_cluster
    ds = ray.data.read_parquet(str(small_corpus), override_num_blocks=4).map_batches(
        tsr_ray.Predictor,
        fn_constructor_kwargs={"model": str(tampered)},
        compute=ray.data.ActorPoolStrategy(size=2),
        num_cpus=1,
    )
    with pytest.raises(Exception) as raised:
        ds.materialize()
    text = str(raised.value)
    assert DIGEST_ERROR in text
    assert text.count(DIGEST_ERROR) <= 2, text  # the error, not one report per row


@full_only
def test_ray_predict_helper_pins_the_digest(ray_cluster, small_corpus, tiny_bert_pt):
    ds = tsr_ray.predict(
        ray_cluster.data.read_parquet(str(small_corpus)), tiny_bert_pt, actors=2, batch_size=100
    )
    table = pa.Table.from_pandas(ds.to_pandas(), preserve_index=False)
    assert_every_row_once(table, TASK_ROWS)


# -- Spark ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spark():
    session = cluster.start_spark()
    yield session
    session.stop()


def spark_table(df) -> pa.Table:
    return pa.Table.from_pylist([row.asDict(recursive=True) for row in df.collect()])


def test_spark_predict_udf_embeds_every_row_once(spark, corpus, embedder, tmp_path):
    df = spark.read.parquet(str(corpus))
    embed = tsr_spark.predict_udf(str(embedder), batch_size=256, predict_batch_size=ALONE)
    out = tmp_path / "out"
    df.withColumn("embedding", embed("text")).write.parquet(str(out))
    table = pq.read_table(out)
    by_id = assert_every_row_once(table, ROWS)
    assert_embeddings_bit_equal(by_id, embedder, ROWS)


def test_spark_map_in_pandas_has_rays_columns(spark, small_corpus, classifier, tagger):
    df = spark.read.parquet(str(small_corpus))
    texts = [row["text"] for row in cluster.corpus_table(TASK_ROWS).to_pylist()]
    ids = cluster.corpus_table(TASK_ROWS).column("id").to_pylist()
    labels = spark_table(tsr_spark.map_in_pandas(df, str(classifier), batch_size=ALONE))
    entities = spark_table(tsr_spark.map_in_pandas(df, str(tagger), batch_size=ALONE))
    struct = spark_table(
        df.withColumn(
            "best", tsr_spark.predict_udf(str(classifier), predict_batch_size=ALONE)("text")
        ).select("id", "text", "best.label", "best.score")
    )
    assert labels.column_names == ["id", "text", "label", "score"]
    assert entities.column_names == ["id", "text", "entities"]
    want_labels = expected(classifier, texts)
    want_entities = expected(tagger, texts)
    by_label = assert_every_row_once(labels, TASK_ROWS)
    by_struct = assert_every_row_once(struct, TASK_ROWS)
    by_entities = assert_every_row_once(entities, TASK_ROWS)
    for row_id, label, entity in zip(ids, want_labels, want_entities, strict=True):
        best = float32_answers(label["labels"][0])
        assert (by_label[row_id]["label"], by_label[row_id]["score"]) == (
            best["label"],
            best["score"],
        )
        assert (by_struct[row_id]["label"], by_struct[row_id]["score"]) == (
            best["label"],
            best["score"],
        )
        assert by_entities[row_id]["entities"] == float32_answers(entity["entities"])


def test_spark_threads_follow_task_cpus(spark, tiny_bert_pt):
    path = str(tiny_bert_pt)

    def report(batches):
        import pandas as pd

        for batch in batches:
            runner = tsr_spark._worker_runner(path, None, {})
            yield pd.DataFrame({"threads": [runner.options.threads] * len(batch)})

    threads = spark.range(4).mapInPandas(report, "threads long").collect()
    assert {row.threads for row in threads} == {int(spark.conf.get("spark.task.cpus", "1"))}


def test_spark_null_text_fails_the_task_naming_the_row(spark, tiny_bert_pt):
    df = spark.createDataFrame([(1, "fine"), (2, None)], "id long, text string").coalesce(1)
    embed = tsr_spark.predict_udf(str(tiny_bert_pt))
    with pytest.raises(Exception, match=r"the UDF's text column: row 1 of the batch is null"):
        df.withColumn("embedding", embed("text")).collect()
    with pytest.raises(Exception, match=r"column 'text': row 1 of the batch is null"):
        tsr_spark.map_in_pandas(df, str(tiny_bert_pt)).collect()


def test_spark_worker_killed_mid_task_every_row_once(spark, corpus, embedder, tmp_path):
    marker = str(tmp_path / "killed")

    def die_once(batches):
        from pyspark import TaskContext

        context = TaskContext.get()
        for index, batch in enumerate(batches):
            yield batch
            if index == 1 and context.partitionId() == 1 and context.attemptNumber() == 0:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
                os.kill(os.getpid(), signal.SIGKILL)  # the Python worker dies mid-task

    df = tsr_spark.map_in_pandas(
        spark.read.parquet(str(corpus)).repartition(2), str(embedder), batch_size=ALONE
    )
    df = df.mapInPandas(die_once, df.schema)
    out = tmp_path / "out"
    df.write.parquet(str(out))
    assert Path(marker).exists(), "no worker was killed"
    by_id = assert_every_row_once(pq.read_table(out), ROWS)
    assert_embeddings_bit_equal(by_id, embedder, ROWS)


def test_spark_tampered_archive_fails_once(spark, small_corpus, tiny_bert_pt, tmp_path):
    df = spark.read.parquet(str(small_corpus))
    tampered = tmp_path / "tampered.pt"
    flip_byte(tiny_bert_pt, tampered, "data.pkl", index=10)
    for build in (tsr_spark.predict_udf, lambda m: tsr_spark.map_in_pandas(df, m)):
        with pytest.raises(tsrunner.LoadError, match="was modified after export"):
            build(str(tampered))  # on the driver, before any task
    # Swapped after the driver checked it: the workers are pinned to the digest checked.
    swapped = tmp_path / "swapped.pt"
    swapped.write_bytes(tiny_bert_pt.read_bytes())
    embed = tsr_spark.predict_udf(str(swapped))
    flip_byte(tiny_bert_pt, swapped, "data.pkl", index=10)
    with pytest.raises(Exception, match="does not have the expected content digest"):
        df.withColumn("embedding", embed("text")).collect()


def test_spark_reads_an_archive_shipped_with_add_file(spark, small_corpus, tiny_bert_pt, tmp_path):
    shipped = tmp_path / "shipped-model.pt"
    shipped.write_bytes(tiny_bert_pt.read_bytes())
    spark.sparkContext.addFile(str(shipped))
    # The name alone: no such file here, so driver and workers take SparkFiles' copy.
    embed = tsr_spark.predict_udf("shipped-model.pt", predict_batch_size=ALONE)
    df = spark.read.parquet(str(small_corpus)).withColumn("embedding", embed("text"))
    by_id = assert_every_row_once(spark_table(df), TASK_ROWS)
    assert_embeddings_bit_equal(by_id, tiny_bert_pt, TASK_ROWS)
    with pytest.raises(tsrunner.LoadError, match=r"nor shipped with SparkContext\.addFile"):
        tsr_spark.predict_udf("never-shipped.pt")


@full_only
def test_docs_spark_example(spark, workspace):
    run_doc_example("spark", workspace)
    for out in ("embedded-spark", "embedded-spark-map"):
        table = pq.read_table(workspace / out)
        assert_every_row_once(table, TASK_ROWS)
        by_id = {row["id"]: row for row in table.to_pylist()}
        assert_embeddings_close(by_id, workspace / "model.pt", TASK_ROWS)
