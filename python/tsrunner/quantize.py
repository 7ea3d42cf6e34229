"""int8 exports: tsrunner's int8 Linear layers, chosen on calibration text, gated on real text.

Each nn.Linear becomes an Int8Linear: its weight quantized per output channel (symmetric int8,
stored packed in the archive, the only copy), its input quantized per token at run time
(asymmetric u8), the products summed in int32 by tsrunner::linear_int8 (VPDPBUSD on CPUs with
AVX512-VNNI, the same integer sums in plain C++ elsewhere). Layers whose int8 error is too
large stay float32, and SmoothQuant-style per-channel scaling is used where it lowers a layer's
error: both chosen by measurement on calibration sentences. The export then has to pass the
accuracy gate (tsrunner.accuracy_gate) on other sentences, or nothing is written.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import tokenizers
import torch

from . import accuracy_gate, sample_text
from .dummy_inputs import InputSpec

QUANTIZE_MODES = ("int8",)
# Calibration sentences: where smoothing and the float layers are chosen. Disjoint from the
# gate's sentences (accuracy_gate.GATE_OFFSET).
CALIBRATION_SENTENCES = 128
CALIBRATION_OFFSET = 4000
CALIBRATION_BATCH = 32
# At most this many Linear layers stay in float32 to reach the gate on calibration text.
MAX_FLOAT_LAYERS = 6
# SmoothQuant's migration strength: s_j = max|x_j|^alpha / max|w_j|^(1 - alpha).
SMOOTH_ALPHA = 0.5
# Rows of each Linear's calibration input kept to measure its error.
SAMPLE_ROWS = 2048

# The inputs text_batches can fill from real text.
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _ops():
    from . import _core  # noqa: F401  registers torch.ops.tsrunner.* (libtsrunner)

    return torch.ops.tsrunner


class Int8Linear(torch.nn.Module):
    """A Linear on tsrunner::linear_int8. Buffers: the packed int8 weight, its per-channel
    scales and sums, the float32 bias, and the smoothing factors its input is multiplied by."""

    def __init__(self, linear: torch.nn.Linear, smooth: torch.Tensor | None = None):
        super().__init__()
        weight = linear.weight.detach().float()
        if smooth is not None:
            weight = weight * smooth  # x / s . (w s)^T == x . w^T
        scales = (weight.abs().amax(1) / 127).clamp(min=1e-12)
        quantized = torch.round(weight / scales[:, None]).clamp(-127, 127).to(torch.int8)
        self.out_features = linear.out_features
        self.register_buffer("panels", _ops().pack_int8_panels(quantized))
        self.register_buffer("scales", scales.contiguous())
        self.register_buffer("sums", quantized.sum(1, dtype=torch.int32).contiguous())
        bias = linear.bias.detach().float().contiguous() if linear.bias is not None else None
        self.register_buffer("bias", bias)
        inverse = (1.0 / smooth).float().contiguous() if smooth is not None else None
        self.register_buffer("smooth", inverse)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ops().linear_int8(
            x, self.panels, self.scales, self.sums, self.bias, self.smooth, self.out_features
        )


def linear_layer_names(model: torch.nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]


def _replace(model: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def calibration_inputs(
    model: torch.nn.Module, run: Callable[[torch.nn.Module], None]
) -> dict[str, torch.Tensor]:
    """Up to SAMPLE_ROWS input rows of every nn.Linear while `run(model)` feeds it
    calibration text (padding rows included: the kernel sees them too)."""
    samples: dict[str, list[torch.Tensor]] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):

            def keep(_module, inputs, _output, name=name):
                rows = inputs[0].detach().reshape(-1, inputs[0].shape[-1])
                taken = sum(part.shape[0] for part in samples.setdefault(name, []))
                if taken < SAMPLE_ROWS:
                    samples[name].append(rows[: SAMPLE_ROWS - taken].clone())

            hooks.append(module.register_forward_hook(keep))
    try:
        with torch.inference_mode():
            run(model)
    finally:
        for hook in hooks:
            hook.remove()
    return {name: torch.cat(parts) for name, parts in samples.items()}


def _relative_error(linear: torch.nn.Linear, quantized: Int8Linear, x: torch.Tensor) -> float:
    with torch.inference_mode():
        want = torch.nn.functional.linear(x, linear.weight, linear.bias)
        got = quantized(x)
    return float((got - want).norm() / want.norm().clamp(min=1e-12))


def _smoothing(linears: list[torch.nn.Linear], x: torch.Tensor) -> torch.Tensor:
    """SmoothQuant's factors for the Linear layers that read `x`: one set for all of them."""
    activation = x.abs().amax(0).clamp(min=1e-5)
    weights = torch.cat([linear.weight.detach() for linear in linears])
    weight = weights.abs().amax(0).clamp(min=1e-5)
    return (activation**SMOOTH_ALPHA / weight ** (1 - SMOOTH_ALPHA)).clamp(1e-2, 1e2)


@dataclass
class LayerChoice:
    """How one Linear is quantized, and its output error on calibration text."""

    name: str
    smoothed: bool
    error: float


def sibling_groups(inputs: dict[str, torch.Tensor]) -> list[list[str]]:
    """The Linear layers grouped by their calibration input: layers fed the very same rows
    (attention's query, key and value) share a group, in model order."""
    groups: list[list[str]] = []
    for name, x in inputs.items():
        for group in groups:
            first = inputs[group[0]]
            if first.shape == x.shape and torch.equal(first, x):
                group.append(name)
                break
        else:
            groups.append([name])
    return groups


def choose_layers(
    model: torch.nn.Module, inputs: dict[str, torch.Tensor]
) -> tuple[dict[str, Int8Linear], list[LayerChoice]]:
    """Every Linear in int8, smoothed where that lowers its output error on its calibration
    inputs; the choices ranked by error, worst first. Layers that read the same input are
    smoothed alike (one set of factors, chosen by their mean error), so the runner can merge
    them into one GEMM over one quantized input (rewrites/int8_linear_fusion.cc)."""
    modules: dict[str, Int8Linear] = {}
    choices = []
    for name in linear_layer_names(model):
        if name not in inputs:  # never called on calibration text: nothing to measure
            modules[name] = Int8Linear(model.get_submodule(name))
            choices.append(LayerChoice(name, False, 0.0))
    for group in sibling_groups(inputs):
        x = inputs[group[0]]
        linears = [model.get_submodule(name) for name in group]
        factors = _smoothing(linears, x)
        plain = [Int8Linear(linear) for linear in linears]
        smoothed = [Int8Linear(linear, factors) for linear in linears]
        plain_errors = [_relative_error(lin, q, x) for lin, q in zip(linears, plain, strict=True)]
        smooth_errors = [
            _relative_error(lin, q, x) for lin, q in zip(linears, smoothed, strict=True)
        ]
        better = sum(smooth_errors) < sum(plain_errors)
        for name, p, s, p_error, s_error in zip(
            group, plain, smoothed, plain_errors, smooth_errors, strict=True
        ):
            modules[name] = s if better else p
            choices.append(LayerChoice(name, better, s_error if better else p_error))
    choices.sort(key=lambda choice: choice.error, reverse=True)
    return modules, choices


def quantized_model(
    model: torch.nn.Module, modules: dict[str, Int8Linear], keep_float: tuple[str, ...] = ()
) -> torch.nn.Module:
    """A copy of `model` with each Linear not in `keep_float` replaced by its Int8Linear."""
    copied = copy.deepcopy(model).eval()
    for name, module in modules.items():
        if name not in keep_float:
            _replace(copied, name, module)
    return copied


def choose_quantized_model(
    model: torch.nn.Module,
    wrap: Callable[[torch.nn.Module], torch.nn.Module],
    batches: list[dict[str, torch.Tensor]],
    kind: str,
    gate: accuracy_gate.Gate,
) -> tuple[torch.nn.Module, list[str], list[LayerChoice], accuracy_gate.GateResult]:
    """The int8 model with the fewest float32 Linear layers that passes `gate` on the
    calibration `batches`: layers kept float32 one at a time, largest int8 error first, up to
    MAX_FLOAT_LAYERS. Returns (model, float layers, per-layer choices, calibration result)."""
    inputs = calibration_inputs(model, lambda m: [wrap(m)(*batch.values()) for batch in batches])
    modules, choices = choose_layers(model, inputs)
    reference = accuracy_gate.vectors(wrap(model), batches, kind)
    kept: list[str] = []
    while True:
        quantized = quantized_model(model, modules, tuple(kept))
        result = accuracy_gate.compare(reference, wrap(quantized), batches, kind, gate)
        if result.passed_cosine or len(kept) >= min(MAX_FLOAT_LAYERS, len(choices)):
            return quantized, kept, choices, result
        kept.append(choices[len(kept)].name)


def describe_method(float_layers: list[str], choices: list[LayerChoice]) -> dict:
    """How the weights were quantized: recorded in the manifest."""
    return {
        "mode": "int8",
        "method": "dynamic",
        "layers": "torch.nn.Linear",
        "kernel": "tsrunner::linear_int8",
        "weights": "int8, per-channel symmetric, packed for VPDPBUSD",
        "activations": "uint8, per-token asymmetric, computed at run time",
        "accumulation": "int32",
        "float_layers": float_layers,
        "smoothed_layers": [c.name for c in choices if c.smoothed and c.name not in float_layers],
        "smooth_alpha": SMOOTH_ALPHA,
        "calibration": {"sentences": CALIBRATION_SENTENCES, "offset": CALIBRATION_OFFSET},
    }


def text_batches(
    specs: list[InputSpec],
    tokenizer_json: str | None,
    pad_token_id: int,
    max_length: int,
    fallback,
    sentences: list[str],
    batch_size: int = CALIBRATION_BATCH,
) -> list[dict[str, torch.Tensor]]:
    """`sentences` tokenized into batches of similar length, padded to the longest in each.

    Without a tokenizer there is no real text to feed: `fallback(batch)` supplies dummy rows.
    """
    names = [spec.name for spec in specs]
    if tokenizer_json is None:
        count = -(-len(sentences) // batch_size)
        return [fallback(batch_size) for _ in range(count)]
    tokenizer = tokenizers.Tokenizer.from_str(tokenizer_json)
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding(pad_id=pad_token_id)
    ordered = sorted(sentences, key=len)  # less padding: what a serving batcher does
    batches = []
    for start in range(0, len(ordered), batch_size):
        encodings = tokenizer.encode_batch(ordered[start : start + batch_size])
        tensors = {
            "input_ids": torch.tensor([e.ids for e in encodings]),
            "attention_mask": torch.tensor([e.attention_mask for e in encodings]),
            "token_type_ids": torch.tensor([e.type_ids for e in encodings]),
        }
        batches.append({name: tensors[name] for name in names})
    return batches


def calibration_sentences() -> list[str]:
    return sample_text.sample(CALIBRATION_SENTENCES, offset=CALIBRATION_OFFSET)
