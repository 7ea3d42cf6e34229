"""Task-aware dummy inputs: real text through the model's own tokenizer, padded with a real mask.

A trace records one path through the model. Tracing and validating on real text with real
padding makes that path the one deployed inputs take (masked attention, both token types).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import tokenizers
import torch

from . import sample_text


@dataclass(frozen=True)
class InputSpec:
    name: str
    default: str | None  # "ones"/"zeros" when a caller may leave the input out
    value_range: tuple[int, int] | None  # valid values, half-open


def input_specs(model: torch.nn.Module, vocab_size: int) -> list[InputSpec]:
    """The inputs the export takes, in the traced positional order."""
    parameters = inspect.signature(model.forward).parameters
    if "input_ids" not in parameters:
        raise ValueError(f"{type(model).__name__} takes no input_ids; it is not a text model")
    specs = [InputSpec("input_ids", None, (0, vocab_size))]
    if "attention_mask" in parameters:
        specs.append(InputSpec("attention_mask", "ones", (0, 2)))
    type_vocab_size = getattr(model.config, "type_vocab_size", None)
    if "token_type_ids" in parameters and type_vocab_size:
        specs.append(InputSpec("token_type_ids", "zeros", (0, int(type_vocab_size))))
    return specs


class DummyInputs:
    """Makes named input tensors of any (batch, sequence) shape."""

    def __init__(
        self, specs: list[InputSpec], tokenizer_json: str | None, pad_token_id: int, vocab: int
    ):
        self.specs = specs
        self.pad_token_id = pad_token_id
        self.vocab_size = vocab
        self.tokenizer = None
        if tokenizer_json is not None:
            self.tokenizer = tokenizers.Tokenizer.from_str(tokenizer_json)
            self.tokenizer.no_truncation()
            self.tokenizer.no_padding()

    def _row(self, index: int, length: int) -> tuple[list[int], list[int]]:
        """Token ids and type ids of one row, exactly `length` tokens long."""
        if self.tokenizer is None:
            generator = torch.Generator().manual_seed(1000 + index)
            ids = torch.randint(0, self.vocab_size, (length,), generator=generator).tolist()
            return ids, [0] * length
        first = sample_text.sample(1, offset=index * 13)[0]
        # A long second segment (odd rows) or continuation so that any length is reachable.
        rest = " ".join(sample_text.sample(24, offset=index * 13 + 1))
        if index % 2:
            encoding = self.tokenizer.encode(first, rest)
        else:
            encoding = self.tokenizer.encode(first + " " + rest)
        ids, type_ids = encoding.ids, encoding.type_ids
        if len(ids) < length:
            raise ValueError(f"sample text too short for a dummy input of {length} tokens")
        if length == 1:
            return ids[:1], type_ids[:1]
        # Keep the closing special token, as truncation by the tokenizer would.
        return ids[: length - 1] + ids[-1:], type_ids[: length - 1] + type_ids[-1:]

    def make(self, batch: int, sequence: int, *, padded: bool) -> dict[str, torch.Tensor]:
        """Named inputs of shape (batch, sequence). With `padded`, every row but the first is
        shorter and padded, with attention_mask 0 over the padding."""
        ids = torch.full((batch, sequence), self.pad_token_id, dtype=torch.long)
        type_ids = torch.zeros((batch, sequence), dtype=torch.long)
        mask = torch.zeros((batch, sequence), dtype=torch.long)
        for row in range(batch):
            length = sequence
            if padded and row > 0:
                length = max(1, sequence - (row * sequence) // (batch + 1))
            row_ids, row_types = self._row(row, length)
            ids[row, :length] = torch.tensor(row_ids)
            type_ids[row, :length] = torch.tensor(row_types)
            mask[row, :length] = 1
        tensors = {"input_ids": ids, "attention_mask": mask, "token_type_ids": type_ids}
        return {spec.name: tensors[spec.name] for spec in self.specs}
