"""tsrunner's int8 Linear on each of its bodies, one GEMM at a time, at MiniLM's shapes.

    python benchmarks/int8_gemm.py [--threads 2] [--rows 704,128,16] [--rounds 40]

For each row count M and each of MiniLM's four Linear shapes (Q/K/V merged 1152x384, output
384x384, FFN 1536x384 and 384x1536), times `tsrunner::linear_int8` (row quantization included,
as a model runs it) on each body this CPU runs, alternating call by call for `--rounds` rounds:
the 512-bit AVX512-VNNI tiles, the 256-bit AVX-VNNI tiles (on an AVX-512 CPU their EVEX
encoding, the same code) and, with --generic, plain C++. The body is picked per call by the test
hook TSR_TEST_INT8_KERNEL (docs/environment.md). Prints the 25th-percentile time of each with
its rate in GMAC/s (M x N x K multiply-adds per second).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

import tsrunner
from tsrunner.aoti import cpu_flags

SHAPES = [(1152, 384), (384, 384), (1536, 384), (384, 1536)]  # (N, K) of MiniLM's GEMMs


def bodies(generic: bool) -> list[str]:
    """The TSR_TEST_INT8_KERNEL values this CPU runs, widest first."""
    flags = cpu_flags()
    names = []
    if "avx512_vnni" in flags:
        names.append("avx512_vnni")
    if "avx_vnni" in flags or {"avx512_vnni", "avx512vl"} <= set(flags):
        names.append("avx_vnni")
    if generic or not names:
        names.append("generic")
    return names


def measure(rows: int, n: int, k: int, rounds: int, names: list[str]) -> dict[str, float]:
    """Seconds per call (25th percentile of `rounds`) on each body, alternating call by call."""
    generator = torch.Generator().manual_seed(rows + n + k)
    x = torch.randn(rows, k, generator=generator)
    weight = torch.randint(-127, 128, (n, k), generator=generator, dtype=torch.int8)
    ops = torch.ops.tsrunner
    args = (
        x,
        ops.pack_int8_panels(weight),
        torch.rand(n, generator=generator) * 0.01 + 1e-3,
        weight.sum(1, dtype=torch.int32),
        torch.randn(n, generator=generator),
        None,
        n,
    )
    times: dict[str, list[float]] = {name: [] for name in names}
    outputs = {}
    for name in names:
        os.environ["TSR_TEST_INT8_KERNEL"] = name
        outputs[name] = ops.linear_int8(*args)
    for name in names[1:]:  # every body gives the same bits
        assert torch.equal(outputs[name], outputs[names[0]]), f"{name} differs from {names[0]}"
    for _ in range(rounds):
        for name in names:
            os.environ["TSR_TEST_INT8_KERNEL"] = name
            start = time.perf_counter()
            ops.linear_int8(*args)
            times[name].append(time.perf_counter() - start)
    del os.environ["TSR_TEST_INT8_KERNEL"]
    return {name: sorted(values)[len(values) // 4] for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", default="704,128,16", help="comma-separated row counts M")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--generic", action="store_true", help="also the plain C++ body (slow)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = bodies(args.generic)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"CPU {tsrunner.cpu_model()}; {args.threads} thread(s); load average {load}; "
          f"tsrunner {tsrunner.__version__}")  # fmt: skip
    print(f"| M | N x K | {' | '.join(names)} |")
    print(f"|---:|---|{'---:|' * len(names)}")
    for rows in (int(value) for value in args.rows.split(",")):
        for n, k in SHAPES:
            seconds = measure(rows, n, k, args.rounds, names)
            macs = rows * n * k
            cells = " | ".join(
                f"{seconds[name] * 1e3:.3f} ms ({macs / seconds[name] / 1e9:.0f} GMAC/s)"
                for name in names
            )
            print(f"| {rows} | {n} x {k} | {cells} |")


if __name__ == "__main__":
    main()
