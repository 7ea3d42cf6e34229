"""RunnerOptions measured with `tsrun bench`: default vs graph optimisation off vs freezing.

    python benchmarks/tuning.py model.pt [--shapes 1x16,1x128,32x128] [--threads 2] [--rounds 3]

Each round runs every variant once per shape, one after another, so they share the machine's
state; the table shows the median over rounds of each run's p50 latency and first call.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

VARIANTS = {
    "default": [],
    "--no-optimize-graph": ["--no-optimize-graph"],
    "--freeze": ["--freeze"],
}


def tsrun() -> str:
    beside = Path(sys.executable).parent / "tsrun"
    return str(beside) if beside.is_file() else shutil.which("tsrun") or "tsrun"


def bench(model: str, batch: int, sequence: int, threads: int, extra: list[str]) -> dict:
    command = [tsrun(), "bench", model, "--batch", str(batch), "--seq", str(sequence)]
    command += ["--threads", str(threads), "--warmup", "3", "--duration", "2", "--json", *extra]
    return json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--shapes", default="1x16,1x128,32x128")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    samples: dict[tuple, list[dict]] = {}
    for _ in range(args.rounds):
        for batch, sequence in shapes:
            for name, extra in VARIANTS.items():
                report = bench(args.model, batch, sequence, args.threads, extra)
                samples.setdefault((batch, sequence, name), []).append(report)
    print("| shape | variant | p50 ms | vs default | first call ms | load ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for batch, sequence in shapes:
        base = statistics.median(
            r["latency_ms"]["p50"] for r in samples[(batch, sequence, "default")]
        )
        for name in VARIANTS:
            runs = samples[(batch, sequence, name)]
            p50 = statistics.median(r["latency_ms"]["p50"] for r in runs)
            first = statistics.median(r["first_call_ms"] for r in runs)
            load = statistics.median(r["load_ms"] for r in runs)
            print(
                f"| {batch}x{sequence} | {name} | {p50:.2f} | {p50 / base:.2f}x | {first:.1f} "
                f"| {load:.0f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
