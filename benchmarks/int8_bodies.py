"""An int8 archive through `tsrun bench` on each int8 GEMM body this CPU runs.

    python benchmarks/int8_bodies.py INT8.pt [--shapes 1x16,1x128] [--rounds 5] [--threads 1]

The body is picked by the test hook TSR_TEST_INT8_KERNEL (docs/environment.md): `avx512_vnni`
(512-bit tiles) and `avx_vnni` (256-bit tiles; on a CPU without AVX-VNNI but with AVX512-VNNI
and AVX512VL, the same tiles EVEX-encoded), `generic` with --generic. Each round runs every body
once per shape, in turn (interleaved: a load spike hits them alike); the table shows the median
over rounds of each run's median latency, and the fastest call of any run (on a loaded machine
the closer estimate of an unloaded call). Results: docs/benchmarks.md ("int8 on AVX-VNNI").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess

ITERATIONS = {16: 200, 128: 40}  # timed calls per sequence length at batch 1 (scaled by 1/batch)


def bench(model: str, batch: int, seq: int, threads: int, body: str, tsrun: str) -> dict:
    iterations = max(5, ITERATIONS.get(seq, 40) // batch)
    command = [tsrun, "bench", model, "--batch", str(batch), "--seq", str(seq), "--json"]
    command += ["--threads", str(threads), "--iterations", str(iterations)]
    environment = {**os.environ, "TSR_TEST_INT8_KERNEL": body}
    result = subprocess.run(command, capture_output=True, text=True, env=environment)
    if result.returncode != 0:
        raise SystemExit(f"TSR_TEST_INT8_KERNEL={body} {' '.join(command)}: {result.stderr}")
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("int8")
    parser.add_argument("--shapes", default="1x16,1x128")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--generic", action="store_true", help="also the plain C++ body (slow)")
    parser.add_argument("--tsrun", default="tsrun")
    args = parser.parse_args()
    bodies = ["avx512_vnni", "avx_vnni"] + (["generic"] if args.generic else [])
    shapes = [tuple(int(part) for part in shape.split("x")) for shape in args.shapes.split(",")]
    runs: dict[tuple, list[dict]] = {}
    for _ in range(args.rounds):
        for batch, seq in shapes:
            for body in bodies:
                result = bench(args.int8, batch, seq, args.threads, body, args.tsrun)
                runs.setdefault((batch, seq, body), []).append(result)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    first = runs[(shapes[0][0], shapes[0][1], bodies[0])][0]
    print(f"CPU {first['cpu']}; {args.threads} thread(s); load average after {load}")
    for body in bodies:
        reason = runs[(shapes[0][0], shapes[0][1], body)][0]["kernel_path_reason"]
        print(f"- {body}: {reason.split('; ')[1]}")
    print("| shape | " + " | ".join(f"{body} ms (fastest)" for body in bodies) + " |")
    print("|---|" + "---:|" * len(bodies))
    for batch, seq in shapes:
        cells = []
        for body in bodies:
            results = runs[(batch, seq, body)]
            median = statistics.median(result["latency_ms"]["p50"] for result in results)
            fastest = min(result["latency_ms"]["min"] for result in results)
            cells.append(f"{median:.2f} ({fastest:.2f})")
        print(f"| {batch}x{seq} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
