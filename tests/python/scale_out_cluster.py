"""Local clusters and corpora for the scale-out tests: Ray with 2 CPUs, Spark local[2], and
Parquet files of real sentences (tsrunner.sample_text) with shuffled integer ids."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tsrunner import sample_text

# Enough to keep a small object store: the corpus is a few MiB and batches are freed as they go.
RAY_OBJECT_STORE_BYTES = 256 * 2**20


def corpus_table(rows: int, *, seed: int = 7) -> pa.Table:
    """`rows` real sentences with ids 0..rows-1 in a shuffled order (so the order of the output
    is only recoverable through the ids)."""
    import numpy as np

    ids = np.random.default_rng(seed).permutation(rows).astype(np.int64)
    return pa.table({"id": ids, "text": sample_text.sample(rows)})


def write_corpus(directory: Path, rows: int, *, files: int = 4) -> Path:
    """The corpus as `files` Parquet files in `directory` (several blocks / partitions)."""
    directory.mkdir(parents=True, exist_ok=True)
    table = corpus_table(rows)
    step = -(-rows // files)
    for index in range(files):
        pq.write_table(table.slice(index * step, step), directory / f"part-{index}.parquet")
    return directory


def java_version() -> int:
    """The major version of the `java` Spark will start, failing loudly when there is none."""
    java = shutil.which("java")
    if os.environ.get("JAVA_HOME"):
        java = str(Path(os.environ["JAVA_HOME"]) / "bin" / "java")
    assert java and Path(java).exists(), (
        "no Java for Spark: run `bash scripts/install-system-deps.sh spark` (make test does)"
    )
    banner = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)', banner)
    assert match, f"cannot read Java's version from: {banner!r}"
    return int(match.group(1))


# Logical CPUs for the local Ray: the machine's 2 for the actors, and 1 more for Ray Data's
# read and write tasks (light, mostly waiting on files). Each of those asks for a whole CPU and
# cannot be told otherwise (ListFiles), so with ray.init(num_cpus=2) two actors of one CPU hold
# every CPU and the read never starts: the job hangs.
RAY_CPUS = 3


def start_ray():
    import ray

    ray.init(
        num_cpus=RAY_CPUS,
        object_store_memory=RAY_OBJECT_STORE_BYTES,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    return ray


def start_spark(master: str = "local[2,2]"):
    """A SparkSession on this machine. `local[2,2]`: 2 task slots (local[2]) and 2 attempts per
    task, so an injected task failure is retried as on a cluster (local[2] allows one)."""
    assert java_version() >= 17, "Spark 4 needs Java 17 or newer"
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master(master)
        .appName("tsrunner-tests")
        .config("spark.driver.memory", "1g")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "500")
        .config("spark.python.worker.reuse", "true")
        .getOrCreate()
    )


DOC = Path(__file__).resolve().parents[2] / "docs" / "scale-out.md"


def doc_example(name: str) -> str:
    """The fenced block right after `<!-- example: NAME -->` in docs/scale-out.md."""
    text = DOC.read_text()
    match = re.search(rf"<!-- example: {re.escape(name)} -->\n```\w+\n(.*?)\n```", text, re.S)
    assert match, f"docs/scale-out.md has no example {name!r}"
    return match.group(1)


def doc_example_names() -> list[str]:
    return re.findall(r"<!-- example: ([\w-]+) -->", DOC.read_text())
