"""Task-aware dummy inputs: real text through the model's own tokenizer, padded with a real mask.

A trace records one path through the model. Tracing and validating on real text with real
padding makes that path the one deployed inputs take (masked attention, both token types).
Models without a tokenizer get in-vocabulary random ids; image models get in-range pixels.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import tokenizers
import torch

from . import sample_text
from .tasks import Task

# Symbolic dimensions a tensor's shape may name (docs/format.md). Every one but batch and choices
# is a length the shape contract bounds and a fixed export pads to.
BATCH, CHOICES, SEQUENCE, DECODER_SEQUENCE = "batch", "choices", "sequence", "decoder_sequence"


@dataclass(frozen=True)
class InputSpec:
    name: str
    role: str  # what the runner feeds it: token_ids, attention_mask, token_type_ids, ...
    dtype: str
    shape: tuple[str | int, ...]
    default: str | None = None  # "ones"/"zeros" when a caller may leave the input out
    value_range: tuple[int, int] | None = None  # valid values, half-open


@dataclass(frozen=True)
class Shape:
    """Sizes of the symbolic dimensions of one set of inputs."""

    batch: int
    sequence: int
    choices: int = 2
    decoder_sequence: int = 1

    def symbols(self) -> dict[str, int]:
        return {
            BATCH: self.batch,
            SEQUENCE: self.sequence,
            CHOICES: self.choices,
            DECODER_SEQUENCE: self.decoder_sequence,
        }


def input_specs(
    model: torch.nn.Module,
    task: Task,
    vocab_size: int | None,
    image_size: tuple[int, int, int],
    *,
    pixel_dtype: str = "float32",
    type_ids: bool = True,
) -> list[InputSpec]:
    """The inputs the export takes, in the traced positional order; token_type_ids only with
    `type_ids` (the model's tokenizer sends them)."""
    parameters = inspect.signature(model.forward).parameters
    if getattr(model, "main_input_name", "input_ids") == "pixel_values":
        return [InputSpec("pixel_values", "pixel_values", pixel_dtype, (BATCH, *image_size))]
    if "input_ids" not in parameters or vocab_size is None:
        raise ValueError(f"{type(model).__name__} takes no input_ids; it is not a text model")
    dims = (BATCH, CHOICES, SEQUENCE) if task.choices else (BATCH, SEQUENCE)
    specs = [InputSpec("input_ids", "token_ids", "int64", dims, None, (0, vocab_size))]
    if "attention_mask" in parameters:
        specs.append(InputSpec("attention_mask", "attention_mask", "int64", dims, "ones", (0, 2)))
    type_vocab_size = getattr(model.config, "type_vocab_size", None)
    if "token_type_ids" in parameters and type_vocab_size and type_ids:
        specs.append(
            InputSpec(
                "token_type_ids", "token_type_ids", "int64", dims, "zeros", (0, type_vocab_size)
            )
        )
    if task.decoder:
        if "decoder_input_ids" not in parameters:
            raise ValueError(f"{type(model).__name__} takes no decoder_input_ids")
        specs.append(
            InputSpec(
                "decoder_input_ids",
                "decoder_token_ids",
                "int64",
                (BATCH, DECODER_SEQUENCE),
                None,
                (0, vocab_size),
            )
        )
    return specs


def padded_inputs(
    encodings: list, input_roles: list[tuple[str, str]], pad_token_id: int
) -> tuple[torch.Tensor, ...]:
    """Input tensors in `input_roles` order ((name, role) pairs) from `tokenizers` encodings,
    padded on the right, as the runner batches text."""
    width = max(len(encoding.ids) for encoding in encodings)
    rows = len(encodings)
    by_role = {
        "token_ids": torch.full((rows, width), pad_token_id, dtype=torch.long),
        "attention_mask": torch.zeros((rows, width), dtype=torch.long),
        "token_type_ids": torch.zeros((rows, width), dtype=torch.long),
    }
    for row, encoding in enumerate(encodings):
        length = len(encoding.ids)
        by_role["token_ids"][row, :length] = torch.tensor(encoding.ids)
        by_role["attention_mask"][row, :length] = 1
        by_role["token_type_ids"][row, :length] = torch.tensor(encoding.type_ids)
    return tuple(by_role[role] for _, role in input_roles)


class DummyInputs:
    """Makes named input tensors of any shape the specs allow."""

    def __init__(
        self,
        specs: list[InputSpec],
        tokenizer_json: str | None,
        pad_token_id: int,
        vocab: int | None,
        *,
        pairs: bool = False,
        decoder_start_token_id: int = 0,
    ):
        self.specs = specs
        self.pad_token_id = pad_token_id
        self.vocab_size = vocab or 1
        self.pairs = pairs
        self.decoder_start_token_id = decoder_start_token_id
        self.device = torch.device("cpu")
        self.dtype = torch.float32  # of floating-point inputs (pixels)
        self.tokenizer = None
        if tokenizer_json is not None:
            self.tokenizer = tokenizers.Tokenizer.from_str(tokenizer_json)
            self.tokenizer.no_truncation()
            self.tokenizer.no_padding()

    def _random_ids(self, seed: int, length: int) -> list[int]:
        generator = torch.Generator().manual_seed(seed)
        return torch.randint(0, self.vocab_size, (length,), generator=generator).tolist()

    def _row(self, index: int, length: int) -> tuple[list[int], list[int]]:
        """Token ids and type ids of one row, exactly `length` tokens long."""
        if self.tokenizer is None:
            return self._random_ids(1000 + index, length), [0] * length
        first = sample_text.sample(1, offset=index * 13)[0]
        # A second segment (pairs) or continuation long enough for `length`: sentences vary in
        # length, so take more of them until it is (24 usually suffice up to 512 tokens).
        count = 24
        while True:
            rest = " ".join(sample_text.sample(count, offset=index * 13 + 1))
            if self.pairs or index % 2:
                encoding = self.tokenizer.encode(first, rest)
            else:
                encoding = self.tokenizer.encode(first + " " + rest)
            if len(encoding.ids) >= length or count >= 4096:
                break
            count *= 2
        ids, type_ids = encoding.ids, encoding.type_ids
        if len(ids) < length:
            raise ValueError(f"sample text too short for a dummy input of {length} tokens")
        if length == 1:
            return ids[:1], type_ids[:1]
        # Keep the closing special token, as truncation by the tokenizer would.
        return ids[: length - 1] + ids[-1:], type_ids[: length - 1] + type_ids[-1:]

    def _text(self, rows: int, sequence: int, padded: bool) -> dict[str, torch.Tensor]:
        ids = torch.full((rows, sequence), self.pad_token_id, dtype=torch.long)
        type_ids = torch.zeros((rows, sequence), dtype=torch.long)
        mask = torch.zeros((rows, sequence), dtype=torch.long)
        for row in range(rows):
            length = sequence
            if padded and row > 0:
                length = max(1, sequence - (row * sequence) // (rows + 1))
            row_ids, row_types = self._row(row, length)
            ids[row, :length] = torch.tensor(row_ids)
            type_ids[row, :length] = torch.tensor(row_types)
            mask[row, :length] = 1
        return {"token_ids": ids, "attention_mask": mask, "token_type_ids": type_ids}

    def make(self, shape: Shape, *, padded: bool) -> dict[str, torch.Tensor]:
        """Named inputs of `shape`. With `padded`, every row but the first is shorter and padded,
        with attention_mask 0 over the padding."""
        by_role: dict[str, torch.Tensor] = {}
        first = self.specs[0]
        if first.role == "pixel_values":
            generator = torch.Generator().manual_seed(shape.batch)
            # Normalised images lie in about [-1, 1] (mean 0.5, std 0.5 is the common setting).
            by_role["pixel_values"] = (
                torch.rand((shape.batch, *first.shape[1:]), generator=generator) * 2 - 1
            )
        elif CHOICES in first.shape:
            rows = self._text(shape.batch * shape.choices, shape.sequence, padded)
            by_role = {
                role: value.view(shape.batch, shape.choices, shape.sequence)
                for role, value in rows.items()
            }
        else:
            by_role = self._text(shape.batch, shape.sequence, padded)
        decoder = torch.tensor(
            [
                [self.decoder_start_token_id, *self._random_ids(row, shape.decoder_sequence - 1)]
                for row in range(shape.batch)
            ],
            dtype=torch.long,
        )
        by_role["decoder_token_ids"] = decoder
        return {spec.name: self.place(by_role[spec.role]) for spec in self.specs}

    def place(self, tensor: torch.Tensor) -> torch.Tensor:
        """On the export's device; floating-point inputs in the export's dtype."""
        if tensor.is_floating_point():
            tensor = tensor.to(self.dtype)
        return tensor.to(self.device)
