"""The accuracy gate (tsrunner.accuracy_gate) through the runner, per precision.

    python benchmarks/precision_gate.py FP32.pt [INT8.pt] [--sentences 2000] [--threads 2]
        [--also-bf16 NAME=MODEL]

The float32 archive on the default kernels is the reference; against it: the same archive with
compute=bf16, and the int8 archive (tsrunner::linear_int8). Sentence vectors are
last_hidden_state mean-pooled over real tokens, as the export's gate computes them.
Results: docs/benchmarks.md ("int8").
"""

from __future__ import annotations

import argparse

import tsrunner
from tsrunner import accuracy_gate, quantize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fp32")
    parser.add_argument("int8", nargs="?")
    parser.add_argument("--sentences", type=int, default=accuracy_gate.GATE_SENTENCES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--also-bf16",
        action="append",
        default=[],
        metavar="NAME=MODEL",
        help="one more archive run with compute=bf16 (an int8 archive with float32 layers: "
        "those on the bf16 kernel, the int8 ones on the int8 kernel)",
    )
    args = parser.parse_args()
    reference_runner = tsrunner.Runner(args.fp32, threads=args.threads)
    names = [spec["name"] for spec in reference_runner.manifest["inputs"]]
    specs = [type("Spec", (), {"name": n}) for n in names]
    batches = quantize.text_batches(
        specs,
        tokenizer_json(args.fp32),
        0,
        reference_runner.manifest.get("max_length", 128),
        None,
        accuracy_gate.gate_sentences(args.sentences),
    )

    def vectors(runner: tsrunner.Runner):
        def call(*inputs):
            outputs = runner.run(dict(zip(names, inputs, strict=True)))
            return (outputs["last_hidden_state"],)

        return accuracy_gate.vectors(call, batches, "embedding")

    reference = vectors(reference_runner)
    contenders = {
        "bf16 (compute=bf16)": tsrunner.Runner(args.fp32, threads=args.threads, compute="bf16")
    }
    if args.int8:
        contenders["int8"] = tsrunner.Runner(args.int8, threads=args.threads)
    for spec in args.also_bf16:
        name, _, model = spec.partition("=")
        contenders[f"{name} (compute=bf16)"] = tsrunner.Runner(
            model, threads=args.threads, compute="bf16"
        )
    for label, runner in contenders.items():
        result = accuracy_gate.judge(reference, vectors(runner), "embedding", accuracy_gate.Gate())
        print(f"| {label} | {result.summary()} |")


def tokenizer_json(path: str) -> str:
    import zipfile

    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("tsrunner/tokenizer.json"))
        return archive.read(name).decode()


if __name__ == "__main__":
    main()
