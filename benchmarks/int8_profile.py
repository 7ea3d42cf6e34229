"""Where a call's time goes, per precision: GEMM, attention, layer norm, other ops, interpreter.

    python benchmarks/int8_profile.py FP32.pt INT8.pt [--shapes 1x16,1x128,32x128]
        [--threads 2] [--seconds 3]

torch.profiler around `Runner.run` (fp32 archive, int8 archive, fp32 archive with
compute=bf16), after warm-up. The ops the interpreter calls on the calling thread are summed by
category, each with what it calls inside (a GEMM's GELU epilogue counts as GEMM; the int8 op's
activation quantization is shown apart as "of which quantize"); "interpreter" is the rest of
the wall time of a call: TorchScript's own work between ops, plus the profiler's overhead
(about a microsecond per op). Results: docs/benchmarks.md ("Where the time goes").
"""

from __future__ import annotations

import argparse
import collections
import os
import time

import torch
from torch.profiler import ProfilerActivity, profile

import tsrunner

CATEGORIES = (
    ("GEMM", ("tsrunner::linear", "aten::linear", "aten::addmm", "aten::matmul", "mkldnn::")),
    ("attention", ("tsrunner::attention", "tsrunner::self_attention", "aten::scaled_dot")),
    ("layer norm", ("tsrunner::layer_norm", "aten::layer_norm", "aten::native_layer_norm")),
    ("GELU, adds", ("aten::gelu", "aten::add")),
)
QUANTIZE = "tsrunner::quantize_rows_u8"


def category(name: str) -> str:
    for label, prefixes in CATEGORIES:
        if name.startswith(prefixes):
            return label
    return "other ops"


def _inside_an_op(event) -> bool:
    """Whether an op (a name with "::") encloses `event`: TorchScript's frames ("forward")
    do not count."""
    parent = event.cpu_parent
    while parent is not None:
        if "::" in parent.name:
            return True
        parent = parent.cpu_parent
    return False


def inputs_for(batch: int, seq: int, names: list[str]) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(batch * 1000 + seq)
    values = {
        "input_ids": torch.randint(1000, 20000, (batch, seq), generator=generator),
        "attention_mask": torch.ones(batch, seq, dtype=torch.long),
        "token_type_ids": torch.zeros(batch, seq, dtype=torch.long),
    }
    return {name: values[name] for name in names}


def profile_runner(runner, inputs, seconds: float) -> tuple[int, float, dict[str, float]]:
    for _ in range(3):
        runner.run(inputs)
    started = time.perf_counter()
    calls = 0
    while time.perf_counter() - started < seconds / 3 or calls < 3:  # unprofiled timing
        runner.run(inputs)
        calls += 1
    plain_ms = (time.perf_counter() - started) * 1e3 / calls
    with profile(activities=[ProfilerActivity.CPU]) as recorded:
        wall = 0.0
        for _ in range(calls):
            t = time.perf_counter()
            runner.run(inputs)
            wall += time.perf_counter() - t
    events = recorded.events()
    outermost = [e for e in events if "::" in e.name and not _inside_an_op(e)]
    by_thread: dict[int, float] = collections.Counter()
    for event in outermost:
        by_thread[event.thread] += event.cpu_time_total
    thread = max(by_thread, key=by_thread.get)  # the thread the interpreter ran on
    totals: dict[str, float] = collections.Counter()
    for event in outermost:
        if event.thread == thread:
            totals[category(event.name)] += event.cpu_time_total / 1e3 / calls
    for event in events:
        if event.name == QUANTIZE and event.thread == thread:
            totals["of which quantize"] += event.cpu_time_total / 1e3 / calls
    ops = sum(v for k, v in totals.items() if k != "of which quantize")
    totals["interpreter"] = max(0.0, wall * 1e3 / calls - ops)
    return calls, plain_ms, totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fp32")
    parser.add_argument("int8")
    parser.add_argument("--shapes", default="1x16,1x128,32x128")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0, help="per contender and shape")
    args = parser.parse_args()
    contenders = {
        "fp32": tsrunner.Runner(args.fp32, threads=args.threads),
        "int8": tsrunner.Runner(args.int8, threads=args.threads),
        "bf16": tsrunner.Runner(args.fp32, threads=args.threads, compute="bf16"),
    }
    columns = [label for label, _ in CATEGORIES] + ["other ops", "of which quantize", "interpreter"]
    print(f"{args.threads} threads, load average {os.getloadavg()[0]:.1f}; ms per call")
    print("| shape | precision | ms per call (unprofiled) | " + " | ".join(columns) + " |")
    print("|---|---|" + "---:|" * (len(columns) + 1))
    for shape in args.shapes.split(","):
        batch, seq = (int(v) for v in shape.split("x"))
        for label, runner in contenders.items():
            names = [spec["name"] for spec in runner.manifest["inputs"]]
            _, plain_ms, totals = profile_runner(
                runner, inputs_for(batch, seq, names), args.seconds
            )
            cells = " | ".join(f"{totals.get(c, 0.0):.2f}" for c in columns)
            print(f"| {shape} | {label} | {plain_ms:.2f} | {cells} |", flush=True)
    for label, runner in contenders.items():
        print(f"{label}: {runner.kernel_path_reason}")


if __name__ == "__main__":
    main()
