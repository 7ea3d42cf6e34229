"""The KV cache as a generation export's decode method sees it: windows of libtsrunner's
preallocated cache buffers, written in place.

Transformers' DynamicCache concatenates the past and the new keys/values of every layer at every
step (and copies the past once more when it is built from tensors): at batch 8 and 200 past
tokens of a GPT-2 small that is ~120 MB copied per decode step. Here each layer's cache is a
view of the caller's buffer, [batch, heads, past + 1, head_dim]: the past, then one free column
that the step writes its new key/value into (`copy_`, traced as an in-place write to the input);
attention reads the whole window where it lies. Cross-attention keys/values (encoder-decoders)
are windows with no free column, read only.
"""

from __future__ import annotations

from typing import Any

import torch

# New tokens a decode step takes (the free columns of a self-attention window).
STEP_TOKENS = 1


def _window_layer_class() -> type:
    from transformers.cache_utils import DynamicLayer

    class WindowLayer(DynamicLayer):
        """One layer's cache: `keys`/`values` are views of the caller's buffers whose last `free`
        columns the step fills."""

        def __init__(self, keys: torch.Tensor, values: torch.Tensor, free: int):
            super().__init__()
            self.keys, self.values = keys, values
            self.free = free
            self.device = keys.device
            self.is_initialized = True

        def update(
            self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
        ) -> tuple[torch.Tensor, torch.Tensor]:
            if self.free == 0:
                raise RuntimeError("a read-only cache window (cross-attention) was written to")
            self.keys[:, :, -self.free :].copy_(key_states)
            self.values[:, :, -self.free :].copy_(value_states)
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.keys.shape[-2] - self.free

        def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
            return self.get_seq_length() + query_length, 0

    return WindowLayer


def window_cache(flat: tuple[torch.Tensor, ...], config: Any, free: int) -> Any:
    """A DynamicCache over `flat` (key, value per layer) whose layers write the step's keys and
    values into the last `free` columns of each window (0: read only)."""
    from transformers import DynamicCache

    layer_class = _window_layer_class()
    cache = DynamicCache(config=config)
    cache.layers = [layer_class(flat[2 * i], flat[2 * i + 1], free) for i in range(len(flat) // 2)]
    return cache


def windows_after(present: list[torch.Tensor], columns: int) -> list[torch.Tensor]:
    """Buffers of `columns` columns (validation and trace inputs) holding a prefill's present
    tensors in their first columns, zeros after, as libtsrunner's cache keeps them."""
    buffers = []
    for tensor in present:
        shape = list(tensor.shape)
        shape[2] = columns
        buffer = tensor.new_zeros(shape)
        buffer[:, :, : tensor.shape[2]] = tensor
        buffers.append(buffer)
    return buffers
