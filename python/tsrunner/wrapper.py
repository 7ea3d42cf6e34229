"""The module that gets traced: explicit named inputs in, a tuple of named outputs out.

Positional order differs across models and versions (the original docs' own example feeds
token_type_ids into BertModel's attention_mask slot), and tracing a dict output fails, so the
wrapper passes every input by name and returns outputs in a recorded order.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch


def fixed_arguments(model: torch.nn.Module) -> dict[str, Any]:
    """Keyword arguments every call gets: no key/value cache (a traced forward returns logits;
    a cache is a Python object, not a tensor output)."""
    parameters = inspect.signature(model.forward).parameters
    return {"use_cache": False} if "use_cache" in parameters else {}


class NamedInputsWrapper(torch.nn.Module):
    """`model` called with named inputs, returning `output_names` in order; with a `head`
    (a sentence-transformers embedding pipeline), also head(last_hidden_state, attention_mask)
    as the last output, named `head_name`."""

    def __init__(
        self,
        model: torch.nn.Module,
        input_names: list[str],
        output_names: list[str],
        head: torch.nn.Module | None = None,
        head_name: str = "sentence_embedding",
    ):
        super().__init__()
        self.model = model
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self.head = head
        self.names = self.output_names + ([head_name] if head is not None else [])
        self.fixed_arguments = fixed_arguments(model)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        named = dict(zip(self.input_names, inputs, strict=True))
        outputs = self.model(**named, **self.fixed_arguments, return_dict=True)
        result = tuple(outputs[name] for name in self.output_names)
        if self.head is None:
            return result
        tokens = outputs["last_hidden_state"]
        mask = named.get("attention_mask")
        if mask is None:
            mask = torch.ones(tokens.shape[:2], dtype=torch.long, device=tokens.device)
        return (*result, self.head(tokens, mask))


def tensor_output_names(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> list[str]:
    """Names of the tensor outputs the eager model returns for `inputs`, in its own order."""
    with torch.inference_mode():
        outputs = model(**inputs, **fixed_arguments(model), return_dict=True)
    return [name for name, value in outputs.items() if isinstance(value, torch.Tensor)]
