"""Two builds of `tsrun serve` side by side: is a change slower under load? Wall-clock
throughput and p50/p99 latency at several client counts.

    python benchmarks/serve_builds.py MODEL.pt OLD=/path/to/old/tsrun NEW=/path/to/new/tsrun \
        [--concurrency 1,8,64] [--seconds 10] [--rounds 2]

Both servers start at once (on loopback, the same serve flags) and stay up; at each client
count they take turns, the order reversed every round, so a ratio in one row shares the
machine's state. Each client sends one sentence per `POST /embed` and waits for the answer
(the closed loop of benchmarks/serve_bench.py). Throughput is wall-clock: run it on a quiet
machine and read the load average printed with the table. Sentences: docstrings of Python's
standard library that fit the model's length. The two servers must answer the same
embedding for the same sentence.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_bench import closed_loop, cpu_name, merge, post

from serve_process import Server, environment_without_api_key, stdlib_sentences


def parse_builds(items: list[str]) -> dict[str, str]:
    builds = {}
    for item in items:
        name, _, path = item.partition("=")
        if not name or not path:
            raise SystemExit(f"serve_builds.py: {item!r} is not NAME=PATH/tsrun")
        if not os.access(path, os.X_OK):
            raise SystemExit(f"serve_builds.py: {path} is not an executable tsrun")
        builds[name] = path
    if len(builds) != 2:
        raise SystemExit("serve_builds.py: give two builds with different names")
    return builds


def run(args) -> dict:
    builds = parse_builds(args.builds)
    sentences = stdlib_sentences(limit=args.sentences)
    loadavg_before = os.getloadavg()
    serve_flags = ["--threads", str(args.threads)]
    servers: dict[str, Server] = {}
    try:
        for name, tsrun in builds.items():
            servers[name] = Server(
                tsrun, [args.model], *serve_flags, env=environment_without_api_key()
            )
        addresses = {name: (server.host, server.port) for name, server in servers.items()}
        # Only sentences the model takes whole (a longer one is a 422 unless truncated).
        first = next(iter(addresses.values()))
        sentences = [text for text in sentences if post(*first, {"inputs": text})[0] == 200]
        answers = [
            json.loads(post(*address, {"inputs": sentences[0]})[1])[0]
            for address in addresses.values()
        ]
        difference = max(abs(a - b) for a, b in zip(*answers, strict=True))
        if difference > 1e-4:
            raise RuntimeError(
                f"the two builds answer different embeddings (max |a-b| {difference})"
            )
        for address in addresses.values():  # warm-up: the shapes of the run
            closed_loop(*address, sentences, 8, args.warmup)
        rows = []
        order = list(builds)
        for clients in [int(c) for c in args.concurrency.split(",")]:
            turns: dict[str, list[dict]] = {name: [] for name in builds}
            for round_index in range(args.rounds):
                for name in order if round_index % 2 == 0 else order[::-1]:
                    turns[name].append(
                        closed_loop(*addresses[name], sentences, clients, args.seconds)
                    )
            row = {"clients": clients, **{name: merge(turns[name]) for name in builds}}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        for server in servers.values():
            server.stop()
    return {
        "cpu": cpu_name(),
        "builds": builds,
        "embedding_max_abs_difference": difference,
        "loadavg_before": [round(x, 2) for x in loadavg_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "rows": rows,
    }


def markdown(results: dict, args) -> str:
    old, new = list(results["builds"])
    lines = [
        f"CPU: {results['cpu']}. Load average before {results['loadavg_before']}, after "
        f"{results['loadavg_after']}. Both builds answer embeddings within "
        f"{results['embedding_max_abs_difference']:.1e} of each other.",
        f"Rerun: `python benchmarks/serve_builds.py MODEL.pt {old}=... {new}=... --concurrency "
        f"{args.concurrency} --seconds {args.seconds:g} --rounds {args.rounds} --threads "
        f"{args.threads}`.",
        "",
        f"| clients | {old} req/s | {new} req/s | {new} / {old} | {old} p50 / p99 ms "
        f"| {new} p50 / p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results["rows"]:
        a, b = row[old], row[new]
        lines.append(
            f"| {row['clients']} | {a['per_second']:.1f} | {b['per_second']:.1f} | "
            f"{b['per_second'] / a['per_second']:.2f} | {a['p50_ms']:.1f} / {a['p99_ms']:.1f} | "
            f"{b['p50_ms']:.1f} / {b['p99_ms']:.1f} | {a['errors'] + b['errors']} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a feature-extraction export (.pt)")
    parser.add_argument("builds", nargs=2, metavar="NAME=TSRUN", help="two tsrun executables")
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sentences", type=int, default=512)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = run(args)
    print(json.dumps(results, indent=2) if args.json else markdown(results, args))
    errors = sum(row[name]["errors"] for row in results["rows"] for name in results["builds"])
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
