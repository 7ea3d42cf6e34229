"""Load test for `tsrun serve` on loopback: many clients, real sentences, misbehaving clients mixed
in; every answer checked against Runner.predict.

    python benchmarks/serve_load.py MODEL.pt --clients 64 --seconds 60 --chaos --json

Starts the server itself (tsrun serve --port 0) unless --url is given. Good clients send
/embed requests of 1-4 sentences from Python's own docstrings and compare each answer with the
embeddings Runner.predict gives for the same sentences (batch composition differs, so within
--atol). With --chaos a share of requests are malformed JSON, bodies cut short, bodies and
headers over the limits, abrupt disconnects and slow clients; each must get its documented
answer (or a closed connection) and must not disturb the good ones. Every loop is bounded by
--seconds. Exits 1 when an answer was wrong or lost, when the server answered anything but the
expected codes (429 counts as deliberate: --max-concurrent-requests), or when its resident
memory grew by more than --max-rss-growth-mb after warm-up.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import socket
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
from serve_process import (
    Server,
    add_server_args,
    environment_without_api_key,
    stdlib_sentences,
)

CHAOS_KINDS = ("malformed", "truncated", "oversized_body", "oversized_header", "disconnect", "slow")


class Load:
    def __init__(self, server: Server, sentences, expected, args):
        self.server = server
        self.sentences = sentences
        self.expected = expected
        self.args = args
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.texts_answered = 0
        self.failures: list[str] = []

    def record(self, key: str, failure: str | None = None, latency: float | None = None, texts=0):
        with self.lock:
            self.counts[key] += 1
            if latency is not None:
                self.latencies.append(latency)
            self.texts_answered += texts
            if failure and len(self.failures) < 20:
                self.failures.append(failure)

    def good(self, rng: random.Random, connection: http.client.HTTPConnection):
        picks = [rng.randrange(len(self.sentences)) for _ in range(rng.randint(1, 4))]
        texts = [self.sentences[i] for i in picks]
        # As Runner.predict answers: cut to the model's length, the model's own normalisation.
        body = json.dumps({"inputs": texts, "truncate": True, "normalize": False})
        started = time.perf_counter()
        connection.request(
            "POST", "/embed", body=body, headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        data = response.read()
        latency = time.perf_counter() - started
        if response.status == 429:
            self.record("good_429")
            return
        if response.status != 200:
            self.record("wrong", f"good request: {response.status} {data[:200]!r}")
            return
        got = np.array(json.loads(data), dtype=np.float32)
        want = self.expected[picks]
        if got.shape != want.shape or not np.allclose(got, want, atol=self.args.atol):
            diff = np.abs(got - want).max() if got.shape == want.shape else got.shape
            self.record("wrong", f"embedding differs: {diff}")
            return
        self.record("good_ok", latency=latency, texts=len(picks))

    def chaos(self, kind: str, rng: random.Random):
        host, port = self.server.host, self.server.port
        with socket.create_connection((host, port), timeout=30) as raw:
            if kind == "malformed":
                body = b'{"inputs": ["unterminated'
                raw.sendall(_request(b"/embed", body))
                self._expect(raw, kind, b" 400 ")
            elif kind == "truncated":  # promises more than it sends, then hangs up
                raw.sendall(_request(b"/embed", b'{"inputs": "x"}', length=1000))
                raw.shutdown(socket.SHUT_WR)
                self._expect(raw, kind, None)
            elif kind == "oversized_body":
                raw.sendall(_request(b"/embed", b"", length=self.args.payload_limit + 1))
                self._expect(raw, kind, b" 413 ")
            elif kind == "oversized_header":
                raw.sendall(
                    b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 20000 + b"\r\n\r\n"
                )
                self._expect(raw, kind, b" 431 ")
            elif kind == "disconnect":  # a valid request, gone before its answer
                raw.sendall(_request(b"/embed", json.dumps({"inputs": ["gone"] * 4}).encode()))
                raw.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                self.record(kind)
            elif kind == "slow":  # a header that never ends: the server must drop it
                raw.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\n")
                time.sleep(rng.uniform(0.1, 0.5))
                raw.sendall(b"Content-Type: appl")
                self._expect(raw, kind, None)

    def _expect(self, raw: socket.socket, kind: str, status: bytes | None):
        raw.settimeout(self.args.read_timeout_ms / 1000 + 10)
        try:
            answer = raw.recv(4096)
        except (ConnectionResetError, TimeoutError) as error:
            answer = b"" if isinstance(error, ConnectionResetError) else None
        if answer is None:
            self.record("wrong", f"{kind}: no answer and no close")
        elif status is not None and status not in answer.split(b"\r\n", 1)[0] + b" ":
            self.record("wrong", f"{kind}: {answer[:80]!r}")
        else:
            self.record(kind)

    def client(self, index: int, deadline: float):
        rng = random.Random(index)
        connection = self.server.connection(timeout=60)
        last_used = time.monotonic()
        while time.monotonic() < deadline:
            try:
                if self.args.chaos and rng.random() < self.args.chaos_share:
                    self.chaos(rng.choice(CHAOS_KINDS), rng)
                else:
                    # The server closes keep-alive connections idle for --read-timeout-ms; a
                    # client that sat in a slow chaos request opens a new one, as real ones do.
                    if time.monotonic() - last_used > self.args.read_timeout_ms / 2000:
                        connection.close()
                        connection = self.server.connection(timeout=60)
                    self.good(rng, connection)
                    last_used = time.monotonic()
            except (OSError, http.client.HTTPException) as error:
                self.record("lost", f"client {index}: {type(error).__name__}: {error}")
                connection.close()
                connection = self.server.connection(timeout=60)
        connection.close()


def _request(path: bytes, body: bytes, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return (
        b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(size).encode() + b"\r\n\r\n" + body
    )


def _run_clients(load: Load, clients: int, deadline: float) -> None:
    threads = [
        threading.Thread(target=load.client, args=(i, deadline), daemon=True)
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()) + 120)


def run(args) -> dict:
    import tsrunner

    sentences = stdlib_sentences(limit=args.sentences)
    runner = tsrunner.Runner(args.model, threads=1)
    expected = np.array([p["embedding"] for p in runner.predict(sentences)], dtype=np.float32)
    del runner
    server_args = [
        "--payload-limit",
        str(args.payload_limit),
        "--read-timeout-ms",
        str(args.read_timeout_ms),
        "--max-concurrent-requests",
        str(args.max_concurrent_requests),
        "--header-limit",
        "16384",
        *args.server_args,
    ]
    with Server(
        args.tsrun, [args.model], *server_args, env=environment_without_api_key()
    ) as server:
        load = Load(server, sentences, expected, args)
        # Warm-up: a few seconds of the same load, then the measured run.
        _run_clients(load, args.clients, time.monotonic() + args.warmup)
        rss_start = server.rss_bytes()
        load.counts.clear()
        load.latencies.clear()
        load.texts_answered = 0
        started = time.monotonic()
        _run_clients(load, args.clients, started + args.seconds)
        elapsed = time.monotonic() - started
        rss_end = server.rss_bytes()
        healthy = server.request("GET", "/health")[0] == 200
        latencies = sorted(load.latencies)
        with open("/proc/loadavg") as loadavg:
            machine_load = loadavg.read().split()[:3]
        return {
            "clients": args.clients,
            "seconds": round(elapsed, 1),
            "chaos": args.chaos,
            "counts": dict(load.counts),
            "texts_per_second": round(load.texts_answered / elapsed, 1),
            "requests_per_second": round(load.counts["good_ok"] / elapsed, 1),
            "latency_ms": {
                "p50": round(1000 * statistics.median(latencies), 2) if latencies else None,
                "p99": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 2)
                if latencies
                else None,
            },
            "rss_mb": {"after_warmup": rss_start >> 20, "end": rss_end >> 20},
            "rss_growth_mb": round((rss_end - rss_start) / 2**20, 1),
            "healthy_at_end": healthy,
            "loadavg": machine_load,
            "failures": load.failures,
        }


def check(result: dict, max_rss_growth_mb: float) -> list[str]:
    problems = []
    counts = result["counts"]
    if counts.get("wrong") or counts.get("lost"):
        problems.append(f"wrong {counts.get('wrong', 0)}, lost {counts.get('lost', 0)}")
    if not counts.get("good_ok"):
        problems.append("no good request was answered")
    if not result["healthy_at_end"]:
        problems.append("/health failed after the run")
    if result["rss_growth_mb"] > max_rss_growth_mb:
        problems.append(f"RSS grew {result['rss_growth_mb']} MB (limit {max_rss_growth_mb})")
    return problems


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a feature-extraction export (.pt)")
    parser.add_argument("--tsrun", default=str(Path(sys.executable).parent / "tsrun"))
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--chaos", action="store_true", help="mix misbehaving clients in")
    parser.add_argument("--chaos-share", type=float, default=0.1)
    parser.add_argument("--sentences", type=int, default=512)
    parser.add_argument("--atol", type=float, default=1e-4)
    parser.add_argument("--payload-limit", type=int, default=200_000)
    parser.add_argument("--read-timeout-ms", type=int, default=2000)
    parser.add_argument("--max-concurrent-requests", type=int, default=512)
    parser.add_argument("--max-rss-growth-mb", type=float, default=32)
    parser.add_argument("--json", action="store_true")
    add_server_args(parser)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    result = run(args)
    problems = check(result, args.max_rss_growth_mb)
    print(json.dumps(result, indent=None if args.json else 2))
    for problem in problems:
        print(f"serve_load: FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
