"""int8 against float32 (and compute=bf16) through `tsrun bench`: latency and peak RSS.

    python benchmarks/int8_speed.py FP32.pt INT8.pt [--shapes 1x16,1x128,32x128] [--rounds 5]
        [--threads 2] [--bf16]

Each round runs every contender once per shape, in turn (interleaved: a load spike hits them
alike); the tables show the median over rounds of each run's median latency and the fastest
call of any run (on a loaded machine the closer estimate of an unloaded call), the speed-up of
int8 over float32, and the largest peak RSS any run of that contender reached (`tsrun bench`
process, weights loaded once). Then `tsrun serve` per precision (--threads as given): its peak
and current RSS after warm-up (64 /embed requests of 32 real sentences each, lengths mixed).
Results: docs/benchmarks.md ("int8").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
from serve_process import Server
from tsrunner import sample_text

ITERATIONS = {16: 200, 128: 40}  # timed calls per sequence length at batch 1 (scaled by 1/batch)


def bench(model: str, batch: int, seq: int, threads: int, extra: list[str], tsrun: str) -> dict:
    iterations = max(5, ITERATIONS.get(seq, 40) // batch)
    command = [tsrun, "bench", model, "--batch", str(batch), "--seq", str(seq), "--json"]
    command += ["--threads", str(threads), "--iterations", str(iterations), *extra]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {result.stderr.strip()}")
    return json.loads(result.stdout)


def serve_rss(tsrun: str, model: str, threads: int, extra: list[str]) -> tuple[float, float]:
    """(peak, current) RSS in MB of `tsrun serve MODEL` after warm-up requests."""
    server = Server(tsrun, [model], "--threads", str(threads), *extra)
    try:
        sentences = sample_text.sample(64 * 32, offset=6000)
        for start in range(0, len(sentences), 32):
            status, _, _ = server.request(
                "POST", "/embed", {"inputs": sentences[start : start + 32], "truncate": True}
            )
            if status != 200:
                raise SystemExit(f"tsrun serve {model}: /embed answered {status}")
        status_file = Path(f"/proc/{server.process.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status_file.splitlines() if ":" in line)
        return (int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fp32")
    parser.add_argument("int8")
    parser.add_argument("--shapes", default="1x16,1x128,32x128")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="also float32 with --compute bf16")
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="NAME=MODEL@TSRUN",
        help="one more contender: MODEL run by another tsrun binary (an earlier build)",
    )
    parser.add_argument(
        "--also-bf16",
        action="append",
        default=[],
        metavar="NAME=MODEL",
        help="one more contender run with --compute bf16 (an int8 archive with float32 layers: "
        "those on the bf16 kernel, the int8 ones on the int8 kernel)",
    )
    args = parser.parse_args()
    tsrun = str(Path(sys.executable).with_name("tsrun"))
    contenders = {"fp32": (args.fp32, [], tsrun), "int8": (args.int8, [], tsrun)}
    if args.bf16:
        contenders["bf16"] = (args.fp32, ["--compute", "bf16"], tsrun)
    for spec in args.also:
        name, _, rest = spec.partition("=")
        model, _, other = rest.partition("@")
        contenders[name] = (model, [], other or tsrun)
    for spec in args.also_bf16:
        name, _, model = spec.partition("=")
        contenders[name] = (model, ["--compute", "bf16"], tsrun)
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    latency: dict[tuple, list[float]] = {}
    fastest: dict[tuple, list[float]] = {}
    rss: dict[str, float] = {}
    paths: dict[str, str] = {}
    for _ in range(args.rounds):
        for batch, seq in shapes:
            for name, (model, extra, binary) in contenders.items():
                run = bench(model, batch, seq, args.threads, extra, binary)
                latency.setdefault((name, batch, seq), []).append(run["latency_ms"]["p50"])
                fastest.setdefault((name, batch, seq), []).append(run["latency_ms"]["min"])
                rss[name] = max(rss.get(name, 0.0), run["peak_rss_mb"])
                paths[name] = run["kernel_path_reason"]
    print(f"cpu: {run['cpu']}, {args.threads} threads, {args.rounds} interleaved rounds, "
          f"load average at the end {os.getloadavg()[0]:.1f}")  # fmt: skip
    header = " | ".join(f"{name} ms" for name in contenders)
    # The median of the runs' medians, and the fastest call of any run: on a loaded machine the
    # latter is the closer estimate of an unloaded call (a call runs alone only now and then).
    for label, values, pick in (("median", latency, statistics.median), ("fastest", fastest, min)):
        print(
            f"\n{label} | shape | {header} | int8 speed-up |\n|---|---|"
            + "---:|" * (len(contenders) + 1)
        )
        for batch, seq in shapes:
            chosen = {n: pick(values[(n, batch, seq)]) for n in contenders}
            cells = " | ".join(f"{chosen[n]:.2f}" for n in contenders)
            print(f"| {label} | {batch}x{seq} | {cells} | {chosen['fp32'] / chosen['int8']:.2f}x |")
    print("peak RSS (MB): " + ", ".join(f"{n} {rss[n]:.0f}" for n in contenders))
    for name, reason in paths.items():
        print(f"{name} kernel path: {reason}")
    for name, (model, extra, binary) in contenders.items():
        peak, current = serve_rss(binary, model, args.threads, extra)
        print(f"tsrun serve {name}: RSS after warm-up {current:.0f} MB, peak {peak:.0f} MB")


if __name__ == "__main__":
    main()
