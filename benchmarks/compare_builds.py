"""Two tsrun builds side by side: is a change slower? Per-call CPU time, not wall time.

    python benchmarks/compare_builds.py model.pt OLD=/path/to/old/tsrun NEW=/path/to/new/tsrun \
        [--shapes 1x16,1x128,8x128] [--rounds 3] [--NEW-args "--kernel-path default"]

On a shared machine wall times swing by 10x while CPU time moves by ~10%, so each figure is the
CPU time (user + sys, one intra-op and one inter-op thread) of a `tsrun bench` run minus that
of a shorter run of the same shape, divided by the extra calls: load, warm-up and first call
cancel out. "load + 1 call" is the CPU time of one `tsrun MODEL --ids ...` process. Builds
alternate within each round; the table shows min and median over rounds.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess

CALLS = {16: 200, 128: 60}  # timed calls per sequence length at batch 1 (scaled by 1/batch)


def cpu_seconds(command: list[str]) -> float:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"{shlex.join(command)} failed: {process.stderr.read().decode().strip()}")
    return usage.ru_utime + usage.ru_stime


def per_call_ms(
    tsrun: list[str], model: str, batch: int, sequence: int, calls: int | None = None
) -> float:
    calls = calls or max(8, CALLS.get(sequence, 60) // batch)
    command = [*tsrun[:1], "bench", model, "--batch", str(batch), "--seq", str(sequence)]
    command += ["--threads", "1", "--interop-threads", "1", "--warmup", "3", *tsrun[1:]]
    short = cpu_seconds([*command, "--iterations", str(calls // 4)])
    long = cpu_seconds([*command, "--iterations", str(calls + calls // 4)])
    return (long - short) / calls * 1000


def load_ms(tsrun: list[str], model: str) -> float:
    command = [tsrun[0], model, "--ids", "101,7592,2088,102", "--raw", "--threads", "1"]
    return cpu_seconds(command) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("builds", nargs=2, metavar="NAME=TSRUN", help="two tsrun executables")
    parser.add_argument("--shapes", default="1x16,1x128,8x128")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--calls",
        type=int,
        help="timed calls per cell (default 200 at 16 tokens, 60 at 128, / batch); a tiny "
        "model needs thousands for its calls' CPU time to outweigh process start-up's noise",
    )
    parser.add_argument(
        "--args",
        action="append",
        default=[],
        metavar="NAME=ARGS",
        help='extra bench arguments for one build, e.g. NEW="--kernel-path default"',
    )
    args = parser.parse_args()
    builds = dict(build.split("=", 1) for build in args.builds)
    extra = {name: shlex.split(value) for name, value in (a.split("=", 1) for a in args.args)}
    tsruns = {name: [path, *extra.get(name, [])] for name, path in builds.items()}
    shapes = [tuple(int(n) for n in shape.split("x")) for shape in args.shapes.split(",")]

    results: dict[tuple[str, str], list[float]] = {}
    loads = []
    for _ in range(args.rounds):
        for batch, sequence in shapes:
            for name, tsrun in tsruns.items():
                ms = per_call_ms(tsrun, args.model, batch, sequence, args.calls)
                results.setdefault((f"{batch}x{sequence}", name), []).append(ms)
        for name, tsrun in tsruns.items():
            results.setdefault(("load + 1 call", name), []).append(load_ms(tsrun, args.model))
        loads.append(os.getloadavg()[0])

    names = list(builds)
    print(
        f"CPU ms per call, 1 thread; load average during the run {min(loads):.1f}-{max(loads):.1f}"
    )
    header = " | ".join(f"{name} min / median" for name in names)
    print(f"| shape | {header} | {names[1]}/{names[0]} (min) |")
    print("| --- |" + " ---: |" * (len(names) + 1))
    rows = dict.fromkeys(key for key, _ in results)
    for row in rows:
        cells = [results[row, name] for name in names]
        text = " | ".join(f"{min(c):.2f} / {statistics.median(c):.2f}" for c in cells)
        print(f"| {row} | {text} | {min(cells[1]) / min(cells[0]):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
