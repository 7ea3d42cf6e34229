"""Proving a trace right: traced vs eager outputs at several (batch, sequence) shapes."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from .dummy_inputs import Shape


@dataclass
class ShapeCheck:
    batch: int
    sequence: int
    padded: bool
    max_abs_diff: dict[str, float]
    passed: bool

    def to_json(self) -> dict:
        """JSON has no infinity: a shape mismatch or NaN (recorded as inf) is stored as null."""
        record = asdict(self)
        record["max_abs_diff"] = {
            name: (diff if math.isfinite(diff) else None)
            for name, diff in self.max_abs_diff.items()
        }
        return record


def decoder_length(sequence: int) -> int:
    """The decoder length checked with an encoder `sequence`: shorter, and odd where it can be."""
    return max(1, (sequence + 1) // 2)


def validation_shapes(
    batch_size: int, trace_length: int, *, images: bool = False
) -> list[tuple[Shape, bool]]:
    """(shape, padded) pairs to check: the traced one first, then sequence length 1, odd
    lengths, a padded batch and the longest sequence alone. Multiple-choice checks vary the
    number of choices; image inputs (fixed size) vary the batch only."""
    if images:
        batches = (batch_size, 1, batch_size + 1, batch_size + 2)
        shapes = [(Shape(b, trace_length), False) for b in batches]
    else:
        lengths = [
            (batch_size, trace_length, batch_size > 1, 2),
            (1, 1, False, 1),
            (3, min(7, trace_length), False, 3),
            (batch_size + 1, max(1, trace_length // 2 + 1), True, 2),
            (1, trace_length, False, 4),
        ]
        shapes = [
            (Shape(b, s, choices=c, decoder_sequence=decoder_length(s)), padded)
            for b, s, padded, c in lengths
        ]
    unique: list[tuple[Shape, bool]] = []
    for shape in shapes:
        if shape not in unique:
            unique.append(shape)
    return unique


def compare(
    eager: Callable[..., tuple[torch.Tensor, ...]],
    traced: Callable[..., tuple[torch.Tensor, ...]],
    inputs: tuple[torch.Tensor, ...],
    output_names: list[str],
    attention_mask: torch.Tensor | None = None,
) -> dict[str, float]:
    """Max absolute difference per output between the eager and the traced module. With an
    `attention_mask`, outputs laid out by token (their leading dims are the mask's) are compared
    where the mask is 1 only: what a model computes at padding it is told to ignore means
    nothing, and differs with the order of float sums (Inductor's kernels)."""
    with torch.inference_mode():
        expected = eager(*inputs)
        actual = traced(*inputs)
    if not isinstance(actual, tuple):
        actual = (actual,)
    differences = {}
    for name, want, got in zip(output_names, expected, actual, strict=True):
        if want.shape != got.shape:
            differences[name] = float("inf")
            continue
        if attention_mask is not None and _by_token(want, attention_mask):
            keep = attention_mask.bool()
            want, got = want[keep], got[keep]
        diff = (want.double() - got.double()).abs().max().item() if want.numel() else 0.0
        differences[name] = diff if diff == diff else float("inf")  # NaN counts as a failure
    return differences


def _by_token(output: torch.Tensor, attention_mask: torch.Tensor) -> bool:
    return output.shape[: attention_mask.dim()] == attention_mask.shape


def check_shape(
    eager,
    traced,
    inputs: tuple[torch.Tensor, ...],
    output_names: list[str],
    atol: float,
    *,
    shape: Shape,
    padded: bool,
    attention_mask: torch.Tensor | None = None,
) -> ShapeCheck:
    differences = compare(eager, traced, inputs, output_names, attention_mask if padded else None)
    return ShapeCheck(
        batch=shape.batch,
        sequence=shape.sequence,
        padded=padded,
        max_abs_diff=differences,
        passed=all(diff <= atol for diff in differences.values()),
    )
