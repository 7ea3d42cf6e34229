"""Proving a trace right: traced vs eager outputs at several (batch, sequence) shapes."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch


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


def validation_shapes(batch_size: int, trace_length: int) -> list[tuple[int, int, bool]]:
    """(batch, sequence, padded) shapes to check: the traced one first, then sequence length 1,
    odd lengths, a padded batch and the longest sequence alone."""
    shapes = [
        (batch_size, trace_length, batch_size > 1),
        (1, 1, False),
        (3, min(7, trace_length), False),
        (batch_size + 1, max(1, trace_length // 2 + 1), True),
        (1, trace_length, False),
    ]
    unique: list[tuple[int, int, bool]] = []
    for shape in shapes:
        if shape not in unique:
            unique.append(shape)
    return unique


def compare(
    eager: Callable[..., tuple[torch.Tensor, ...]],
    traced: Callable[..., tuple[torch.Tensor, ...]],
    inputs: tuple[torch.Tensor, ...],
    output_names: list[str],
) -> dict[str, float]:
    """Max absolute difference per output between the eager and the traced module."""
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
        diff = (want.double() - got.double()).abs().max().item() if want.numel() else 0.0
        differences[name] = diff if diff == diff else float("inf")  # NaN counts as a failure
    return differences


def check_shape(
    eager,
    traced,
    inputs: tuple[torch.Tensor, ...],
    output_names: list[str],
    atol: float,
    *,
    padded: bool,
) -> ShapeCheck:
    batch, sequence = inputs[0].shape
    differences = compare(eager, traced, inputs, output_names)
    return ShapeCheck(
        batch=int(batch),
        sequence=int(sequence),
        padded=padded,
        max_abs_diff=differences,
        passed=all(diff <= atol for diff in differences.values()),
    )
