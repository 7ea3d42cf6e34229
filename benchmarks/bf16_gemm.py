"""tsrunner's bf16 GEMM against oneDNN's, one GEMM at a time, at MiniLM's shapes.

    python benchmarks/bf16_gemm.py [--threads 1] [--rows 704,128,16] [--rounds 40]

For each row count M (704 = a batch of 32 sentences of 22 tokens, batch mode's typical GEMM;
128 = one 128-token sentence; 16 = one short sentence) and each of MiniLM's four Linear shapes
(Q/K/V merged 1152x384, output 384x384, FFN 1536x384 and 384x1536), times side by side,
alternating call by call for `--rounds` rounds:
  - tsrunner's kernel (`tsrunner::linear_bf16_panels`: what compute=bf16 runs on CPUs with
    AVX512_BF16 and no AMX),
  - oneDNN's bf16 GEMM on a packed bf16 weight (`tsrunner::linear_bf16`: x rounded to bf16,
    the output widened back to float32, as compute=bf16 ran before the kernel),
  - oneDNN's float32 GEMM on a packed weight (`tsrunner::linear` without panels: the fp32 path
    above 48 rows),
and prints the 25th-percentile time of each with its GFLOP/s. Needs AVX512_BF16.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

import tsrunner
from tsrunner.aoti import cpu_flags

SHAPES = [(1152, 384), (384, 384), (1536, 384), (384, 1536)]  # (N, K) of MiniLM's GEMMs


def measure(rows: int, n: int, k: int, rounds: int) -> dict[str, float]:
    """Seconds per call (25th percentile of `rounds`) of each GEMM, alternating call by call."""
    generator = torch.Generator().manual_seed(rows + n + k)
    x = torch.randn(rows, k, generator=generator)
    weight = torch.randn(n, k, generator=generator) / 10
    bias = torch.randn(n, generator=generator)
    panels = torch.ops.tsrunner.pack_bf16_panels(weight)
    packed_bf16 = torch.ops.mkldnn._reorder_linear_weight(weight.bfloat16(), None)
    packed_fp32 = torch.ops.mkldnn._reorder_linear_weight(weight, None)
    ops = torch.ops.tsrunner
    calls = {
        "tsrunner bf16": lambda: ops.linear_bf16_panels(x, panels, n, bias, "none", None, None),
        "oneDNN bf16": lambda: ops.linear_bf16(x, packed_bf16, bias, "none", None, None),
        "oneDNN fp32": lambda: ops.linear(x, packed_fp32, None, bias, "none", None, None),
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        call()
        call()
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: sorted(values)[len(values) // 4] for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rows", default="704,128,16", help="comma-separated row counts M")
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    if "avx512_bf16" not in cpu_flags():
        raise SystemExit("bf16_gemm.py: this CPU has no AVX512_BF16, the kernel does not run here")
    torch.set_num_threads(args.threads)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"CPU {tsrunner.cpu_model()}; {args.threads} thread(s); load average {load}; "
          f"tsrunner {tsrunner.__version__}")  # fmt: skip
    print("| M | N x K | tsrunner bf16 | oneDNN bf16 | oneDNN fp32 | tsrunner vs oneDNN bf16 |")
    print("|---:|---|---:|---:|---:|---:|")
    for rows in (int(value) for value in args.rows.split(",")):
        for n, k in SHAPES:
            seconds = measure(rows, n, k, args.rounds)
            flops = 2 * rows * n * k
            cells = " | ".join(
                f"{seconds[name] * 1e3:.3f} ms ({flops / seconds[name] / 1e9:.0f} GFLOP/s)"
                for name in ("tsrunner bf16", "oneDNN bf16", "oneDNN fp32")
            )
            ratio = seconds["oneDNN bf16"] / seconds["tsrunner bf16"]
            print(f"| {rows} | {n} x {k} | {cells} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
