"""int8 against float32 (and compute=bf16) through `tsrun bench`: latency and peak RSS.

    python benchmarks/int8_speed.py FP32.pt INT8.pt [--shapes 1x16,1x128,32x128] [--rounds 5]
        [--threads 2] [--bf16]

Each round runs every contender once per shape, in turn (interleaved: a load spike hits them
alike); the table shows the median over rounds of each run's median latency, the speed-up of
int8 over float32, and the largest peak RSS any run of that contender reached (`tsrun bench`
process, weights loaded once). Results: docs/benchmarks.md ("int8").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ITERATIONS = {16: 200, 128: 40}  # timed calls per sequence length at batch 1 (scaled by 1/batch)


def bench(tsrun: str, model: str, batch: int, seq: int, threads: int, extra: list[str]) -> dict:
    iterations = max(5, ITERATIONS.get(seq, 40) // batch)
    command = [tsrun, "bench", model, "--batch", str(batch), "--seq", str(seq), "--json"]
    command += ["--threads", str(threads), "--iterations", str(iterations), *extra]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {result.stderr.strip()}")
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fp32")
    parser.add_argument("int8")
    parser.add_argument("--shapes", default="1x16,1x128,32x128")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="also float32 with --compute bf16")
    args = parser.parse_args()
    tsrun = str(Path(sys.executable).with_name("tsrun"))
    contenders = {"fp32": (args.fp32, []), "int8": (args.int8, [])}
    if args.bf16:
        contenders["bf16"] = (args.fp32, ["--compute", "bf16"])
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    latency: dict[tuple, list[float]] = {}
    rss: dict[str, float] = {}
    paths: dict[str, str] = {}
    for _ in range(args.rounds):
        for batch, seq in shapes:
            for name, (model, extra) in contenders.items():
                run = bench(tsrun, model, batch, seq, args.threads, extra)
                latency.setdefault((name, batch, seq), []).append(run["latency_ms"]["p50"])
                rss[name] = max(rss.get(name, 0.0), run["peak_rss_mb"])
                paths[name] = run["kernel_path_reason"]
    print(f"cpu: {run['cpu']}, {args.threads} threads, {args.rounds} interleaved rounds, "
          f"load average at the end {os.getloadavg()[0]:.1f}")  # fmt: skip
    header = " | ".join(f"{name} ms" for name in contenders)
    print(f"| shape | {header} | int8 speed-up |\n|---|" + "---:|" * (len(contenders) + 1))
    for batch, seq in shapes:
        medians = {n: statistics.median(latency[(n, batch, seq)]) for n in contenders}
        cells = " | ".join(f"{medians[n]:.2f}" for n in contenders)
        print(f"| {batch}x{seq} | {cells} | {medians['fp32'] / medians['int8']:.2f}x |")
    print("peak RSS (MB): " + ", ".join(f"{n} {rss[n]:.0f}" for n in contenders))
    for name, reason in paths.items():
        print(f"{name} kernel path: {reason}")


if __name__ == "__main__":
    main()
