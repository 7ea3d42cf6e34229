"""What `--isa avx2` costs: the same model compiled by AOTInductor for the exporting CPU
(`--isa native`, e.g. AVX-512) and for x86-64-v3 (AVX2 + FMA), run side by side.

    python benchmarks/aoti_isa.py [--shapes 1x16,1x128,32x128] [--rounds 3] [--work-dir DIR]
                                  [--reuse]

Exports MiniLM (all-MiniLM-L6-v2, --max-length 128) both ways (--reuse: keeps the work
directory's packages of an earlier run), then measures CPU ms per call of `tsrun bench` at
one thread (compare_builds.py's method: a long run minus a short run, so load, warm-up and the
first call cancel out), the two packages alternating within each round. Prints the CPU, the
load average and a markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="1x16,1x128,32x128")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work-dir", default=str(Path(tempfile.gettempdir()) / "tsr-aoti-isa"))
    parser.add_argument("--reuse", action="store_true", help="keep packages of an earlier run")
    args = parser.parse_args()

    import compare_builds as compare  # benchmarks/ is on sys.path when run as a script
    import peers

    import tsrunner

    shapes = peers.parse_shapes(args.shapes)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    packages = {}
    for isa in ("native", "avx2"):
        path = work / f"minilm-128-{isa}.pt2"
        if not (args.reuse and path.exists()):
            started = time.perf_counter()
            tsrunner.export(peers.minilm_directory(), path, max_length=128, isa=isa)
            print(f"export --isa {isa}: {time.perf_counter() - started:.0f} s", flush=True)
        packages[isa] = path
    tsrun = [peers.tsrun_path()]
    results: dict[tuple[str, str], list[float]] = {}
    loads = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        for batch, sequence in shapes:
            for isa, path in packages.items():
                ms = compare.per_call_ms(tsrun, str(path), batch, sequence)
                results.setdefault((f"{batch}x{sequence}", isa), []).append(ms)
        loads.append(os.getloadavg()[0])

    print(f"CPU: {peers.cpu_model()}; AOTInductor kernels (oneDNN GEMMs); CPU ms per call, "
          f"1 thread; load average {min(loads):.1f}-{max(loads):.1f}")  # fmt: skip
    print()
    print(
        "| shape | --isa native min / median | --isa avx2 min / median | avx2 / native (median) |"
    )
    print("| --- | ---: | ---: | ---: |")
    for batch, sequence in shapes:
        shape = f"{batch}x{sequence}"
        native, avx2 = results[(shape, "native")], results[(shape, "avx2")]
        print(
            f"| {shape} | {min(native):.2f} / {statistics.median(native):.2f} | "
            f"{min(avx2):.2f} / {statistics.median(avx2):.2f} | "
            f"{statistics.median(avx2) / statistics.median(native):.2f}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
