"""The two tsrunner formats side by side: AOTInductor `.pt2` vs TorchScript `.pt` (oneDNN kernel
path) vs ONNX Runtime (optimized), all in one process with alternating calls.

    python benchmarks/aoti_vs_torchscript.py [--shapes 1x16,1x128,32x128] [--threads 2]
                                             [--isa native] [--calls 7] [--corpus 256]
                                             [--work-dir DIR] [--reuse]

Prints a markdown report: export (and compile) time, archive size, cold start of `tsrun --ids`
(fresh process, median of 3), median latency per shape (every runner takes its turn call by
call, so all share the machine's state), and `Runner.predict` throughput over real sentences
(length-sorted batches of 32; for ONNX Runtime the same batches through the Hugging Face fast
tokenizer and the session), with the CPU model and the load average before and after. Exports
are made afresh unless --reuse (then the work directory's files from an earlier run are used
and their export time is not known).
Extra dependencies: requirements/bench.txt (onnxruntime).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="1x16,1x128,32x128")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--isa", default="native", choices=["native", "avx2"])
    parser.add_argument("--calls", type=int, default=7, help="timed calls per runner and shape")
    parser.add_argument("--corpus", type=int, default=256, help="real sentences for predict()")
    parser.add_argument("--work-dir", default=str(Path(tempfile.gettempdir()) / "tsr-aoti-bench"))
    parser.add_argument("--reuse", action="store_true", help="keep exports of an earlier run")
    args = parser.parse_args()

    import peers  # benchmarks/ is on sys.path when run as a script
    import transformers

    import tsrunner
    from tsrunner.sample_text import sample

    shapes = peers.parse_shapes(args.shapes)
    longest = max(sequence for _, sequence in shapes)
    torch.set_num_threads(args.threads)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    model_dir = peers.minilm_directory()
    load_before = os.getloadavg()
    print(f"CPU: {peers.cpu_model()}; {args.threads} threads; load average {load_before}")

    exports = {}
    for name, output, extra in (
        ("pt", work / f"minilm-{longest}.pt", {}),
        ("pt2", work / f"minilm-{longest}-{args.isa}.pt2", {"isa": args.isa}),
    ):
        started = time.perf_counter()
        if not (args.reuse and output.exists()):
            tsrunner.export(model_dir, output, max_length=longest, **extra)
            seconds = time.perf_counter() - started
        else:
            seconds = float("nan")  # reused from an earlier run
        exports[name] = (output, seconds, output.stat().st_size)
    peers.EXPORT_MAX_LENGTH["value"] = longest
    if not args.reuse:  # ONNX export and optimization timed too
        for built in ("model-eager.onnx", "model-eager-optimized.onnx"):
            (work / built).unlink(missing_ok=True)
    started = time.perf_counter()
    ort = peers.PYTHON_RUNNERS["onnxruntime"](model_dir, work, args.threads)
    ort_seconds = time.perf_counter() - started

    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    ids = tokenizer("The quick brown fox jumps over the lazy dog.")["input_ids"]
    cold = {}
    for name in ("pt", "pt2"):
        command = [peers.tsrun_path(), str(exports[name][0]), "--ids", ",".join(map(str, ids))]
        command += ["--raw", "--threads", str(args.threads)]
        runs = [peers.run_measuring_rss(command) for _ in range(3)]
        cold[name] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))

    pt = tsrunner.Runner(exports["pt"][0], threads=args.threads, kernel_path="onednn")
    pt2 = tsrunner.Runner(exports["pt2"][0], threads=args.threads)
    runners = {
        f"tsrunner .pt ({pt.kernel_path})": pt.run,
        "tsrunner .pt2 (aoti)": pt2.run,
        "onnxruntime (optimized)": ort,
    }
    latencies: dict[tuple[int, int], dict[str, float]] = {}
    for batch, sequence in shapes:
        inputs = peers.real_text_inputs(tokenizer, batch, sequence)
        times: dict[str, list[float]] = {name: [] for name in runners}
        for run in runners.values():
            run(inputs)  # warm-up
        for _ in range(args.calls):
            for name, run in runners.items():
                started = time.perf_counter()
                run(inputs)
                times[name].append((time.perf_counter() - started) * 1e3)
        latencies[(batch, sequence)] = {name: statistics.median(t) for name, t in times.items()}
        print(f"[{batch}x{sequence}] " + ", ".join(
            f"{name} {ms:.2f} ms" for name, ms in latencies[(batch, sequence)].items()
        ), flush=True)  # fmt: skip

    texts = sorted(sample(args.corpus), key=len)
    corpus = {}
    for name, runner in (("pt", pt), ("pt2", pt2)):
        runner.predict(texts[:32], batch_size=32)
        started = time.perf_counter()
        runner.predict(texts, batch_size=32)
        corpus[name] = len(texts) / (time.perf_counter() - started)

    def ort_predict(batch_texts: list[str]) -> None:
        for start in range(0, len(batch_texts), 32):
            encoded = tokenizer(
                batch_texts[start : start + 32],
                padding=True,
                truncation=True,
                max_length=longest,
                return_tensors="pt",
            )
            ort(dict(encoded))

    ort_predict(texts[:32])
    started = time.perf_counter()
    ort_predict(texts)
    corpus["ort"] = len(texts) / (time.perf_counter() - started)
    load_after = os.getloadavg()

    print()
    print(f"CPU: {peers.cpu_model()} ({args.threads} threads), torch {torch.__version__}, "
          f"load average {load_before[0]:.1f} before / {load_after[0]:.1f} after")  # fmt: skip
    print()
    print("| | .pt (TorchScript) | .pt2 (AOTInductor, isa " + args.isa + ") | ONNX Runtime |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| export s | {exports['pt'][1]:.0f} | {exports['pt2'][1]:.0f} | {ort_seconds:.0f} |")
    print(
        f"| archive MB | {exports['pt'][2] / 1e6:.1f} | {exports['pt2'][2] / 1e6:.1f} | "
        f"{(work / 'model-eager-optimized.onnx').stat().st_size / 1e6:.1f} |"
    )
    print(
        f"| cold start `tsrun --ids` s (peak RSS MB) | {cold['pt'][0]:.2f} ({cold['pt'][1]:.0f}) "
        f"| {cold['pt2'][0]:.2f} ({cold['pt2'][1]:.0f}) | - |"
    )
    for (batch, sequence), row in latencies.items():
        cells = " | ".join(f"{ms:.2f}" for ms in row.values())
        print(f"| {batch}x{sequence} median ms | {cells} |")
    print(
        f"| {len(texts)} real sentences, `predict` sentences/s | {corpus['pt']:.1f} | "
        f"{corpus['pt2']:.1f} | {corpus['ort']:.1f} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
