"""int8 exports: dynamic int8 quantization of Linear layers, judged on real text.

Dynamic quantization stores Linear weights as int8 and quantizes activations per call, so it
needs no calibration data and traces like the float model. What it costs is accuracy, which an
absolute tolerance cannot judge (int8 outputs differ from float32 by far more than 1e-4 while
still meaning the same thing). So an int8 export is checked the way its users judge it: the
cosine between float32 and int8 outputs on real sentences, per sequence, must average at least
MIN_MEAN_COSINE and never drop below MIN_COSINE; otherwise nothing is written. When int8
everywhere misses that bar, the few Linear layers the model is most sensitive to stay float32
(choose_quantized_model).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass

import tokenizers
import torch

from . import sample_text
from .dummy_inputs import InputSpec

QUANTIZE_MODES = ("int8",)
MIN_MEAN_COSINE = 0.99
MIN_COSINE = 0.98
# Real sentences the accuracy check runs, in batches of ACCURACY_BATCH.
ACCURACY_SENTENCES = 64
ACCURACY_BATCH = 16
# At most this many Linear layers stay in float32 to reach the accuracy bar.
MAX_FLOAT_LAYERS = 4


@dataclass
class AccuracyCheck:
    """Float32 vs int8 on real text: cosine of one output per sequence."""

    output: str
    sentences: int
    mean_cosine: float
    min_cosine: float
    min_mean_cosine: float = MIN_MEAN_COSINE
    min_min_cosine: float = MIN_COSINE

    @property
    def passed(self) -> bool:
        return self.mean_cosine >= self.min_mean_cosine and self.min_cosine >= self.min_min_cosine

    def to_json(self) -> dict:
        return {"metric": "cosine", **asdict(self), "passed": self.passed}


class FullRangeDynamicLinear(torch.ao.nn.quantized.dynamic.Linear):
    """A dynamic int8 Linear whose activations use all 8 bits.

    PyTorch's dynamic Linear quantizes activations with reduce_range=True (7 bits), a guard
    against int16 saturation on CPUs without VNNI. Those 7 bits cost MiniLM most of its
    accuracy (cosine 0.974 vs 0.993 with 8 bits, docs/benchmarks.md); the real-text check
    below is what guards the result on any CPU.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(
            x, self._packed_params._packed_params, reduce_range=False
        )


def quantize_linear_layers(
    model: torch.nn.Module, keep_float: tuple[str, ...] = ()
) -> torch.nn.Module:
    """A copy of `model` with every nn.Linear not named in `keep_float` made dynamic int8.

    Weights are quantized per output channel (symmetric): per-tensor scales lose the small
    channels next to the large ones (MiniLM cosine 0.946 per-tensor, measured).
    """
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    if "x86" in torch.backends.quantized.supported_engines:
        torch.backends.quantized.engine = "x86"
    spec = {
        name: per_channel_dynamic_qconfig
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and name not in keep_float
    }
    with warnings.catch_warnings():
        # torch.ao.quantization warns that it is deprecated in favour of torchao (not a
        # dependency here); it is what TorchScript can trace and LibTorch can run today.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions")
        quantized = quantize_dynamic(copy.deepcopy(model).eval(), spec, dtype=torch.qint8)
    for module in quantized.modules():
        if type(module) is torch.ao.nn.quantized.dynamic.Linear:
            module.__class__ = FullRangeDynamicLinear
    return quantized


def linear_layer_names(model: torch.nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]


def choose_quantized_model(
    model: torch.nn.Module,
    wrap: Callable[[torch.nn.Module], torch.nn.Module],
    batches: list[dict[str, torch.Tensor]],
    output_names: list[str],
) -> tuple[torch.nn.Module, list[str], AccuracyCheck]:
    """The int8 model with the fewest Linear layers left in float32 that passes the check.

    All layers int8 first. If that misses the bar, each layer's sensitivity is measured (that
    layer alone in int8) and the most sensitive are kept in float32, one more at a time, up to
    MAX_FLOAT_LAYERS. For MiniLM one feed-forward output projection of 37 Linears suffices.
    Returns (model, layers kept in float32, accuracy of the eager int8 model).
    """
    reference = first_outputs(wrap(model), batches)  # computed once, compared many times
    quantized = quantize_linear_layers(model)
    accuracy = check_accuracy(reference, wrap(quantized), batches, output_names)
    if accuracy.passed:
        return quantized, [], accuracy
    names = linear_layer_names(model)
    sensitivity = {}
    for name in names:
        only_this = quantize_linear_layers(model, tuple(n for n in names if n != name))
        check = check_accuracy(reference, wrap(only_this), batches, output_names)
        sensitivity[name] = (1 - check.mean_cosine) + (1 - check.min_cosine)
    ranked = sorted(names, key=lambda name: sensitivity[name], reverse=True)
    for count in range(1, min(MAX_FLOAT_LAYERS, len(ranked)) + 1):
        kept = ranked[:count]
        quantized = quantize_linear_layers(model, tuple(kept))
        accuracy = check_accuracy(reference, wrap(quantized), batches, output_names)
        if accuracy.passed:
            break
    return quantized, kept, accuracy


def describe_method(float_layers: list[str]) -> dict:
    """How the weights were quantized: recorded in the manifest."""
    return {
        "mode": "int8",
        "method": "dynamic",
        "layers": "torch.nn.Linear",
        "weights": "int8, per-channel symmetric",
        "activations": "uint8 (full 8-bit range), dynamic per-tensor scale computed at run time",
        "engine": torch.backends.quantized.engine,
        "float_layers": float_layers,
    }


# The inputs text_batches can fill from real text.
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def text_batches(
    specs: list[InputSpec],
    tokenizer_json: str | None,
    pad_token_id: int,
    max_length: int,
    fallback,
) -> list[dict[str, torch.Tensor]]:
    """Batches of real sentences, tokenized and padded to the longest in each batch.

    Without a tokenizer there is no real text to feed: `fallback(batch)` supplies dummy rows.
    """
    names = [spec.name for spec in specs]
    if tokenizer_json is None:
        return [fallback(ACCURACY_BATCH) for _ in range(ACCURACY_SENTENCES // ACCURACY_BATCH)]
    tokenizer = tokenizers.Tokenizer.from_str(tokenizer_json)
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding(pad_id=pad_token_id)
    sentences = sample_text.sample(ACCURACY_SENTENCES, offset=500)
    batches = []
    for start in range(0, len(sentences), ACCURACY_BATCH):
        encodings = tokenizer.encode_batch(sentences[start : start + ACCURACY_BATCH])
        tensors = {
            "input_ids": torch.tensor([e.ids for e in encodings]),
            "attention_mask": torch.tensor([e.attention_mask for e in encodings]),
            "token_type_ids": torch.tensor([e.type_ids for e in encodings]),
        }
        batches.append({name: tensors[name] for name in names})
    return batches


def _per_sequence(output: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """One vector per sequence: token outputs are mean-pooled over real tokens (what a
    sentence embedding is), anything else is flattened."""
    output = output.double()
    if mask is not None and output.dim() >= 3 and output.shape[:2] == mask.shape:
        weights = mask.to(output.dtype).reshape(*mask.shape, *([1] * (output.dim() - 2)))
        output = (output * weights).sum(1) / weights.sum(1).clamp(min=1)
    return output.reshape(output.shape[0], -1)


def first_outputs(model, batches: list[dict[str, torch.Tensor]]) -> list[torch.Tensor]:
    """The first output of `model` for each batch (what the accuracy check compares)."""
    with torch.inference_mode():
        return [model(*batch.values())[0] for batch in batches]


def check_accuracy(
    reference,
    quantized,
    batches: list[dict[str, torch.Tensor]],
    output_names: list[str],
) -> AccuracyCheck:
    """Cosine per sequence between `reference` (float32, or its first_outputs) and `quantized`
    on the first output."""
    wanted = reference if isinstance(reference, list) else first_outputs(reference, batches)
    cosines = []
    for batch, want, got in zip(batches, wanted, first_outputs(quantized, batches), strict=True):
        mask = batch.get("attention_mask")
        cosines.append(
            torch.nn.functional.cosine_similarity(
                _per_sequence(want, mask), _per_sequence(got, mask), dim=1
            )
        )
    values = torch.cat(cosines)
    values = torch.nan_to_num(values, nan=-1.0)  # a NaN output fails the check
    return AccuracyCheck(
        output=output_names[0],
        sentences=int(values.numel()),
        mean_cosine=float(values.mean()),
        min_cosine=float(values.min()),
        min_mean_cosine=MIN_MEAN_COSINE,
        min_min_cosine=MIN_COSINE,
    )
