"""Encoder-decoder exports that generate (T5, BART): `encode` and `decode` methods, the decoder's
self-attention cache and the cross-attention keys/values as flat tensors.

Transformers 5 has no tuple `past_key_values` and no torchscript flag, so, as for decoders
(generation_export), the wrapper builds an EncoderDecoderCache from flat tensors inside the
traced code. The cross-attention keys/values are computed once per sequence, by `encode`, from
the encoder output; `decode` reads them from the cache (HF's own "is_updated" path) and never
sees the encoder states.

    encode(input_ids [batch, source], attention_mask [batch, source],
           decoder_input_ids [batch, 1] (the decoder start token))
        -> (logits [batch, vocab] of the first step,
            present.0.key, present.0.value, ... ([batch, heads, 1, head_dim]),
            cross.0.key, cross.0.value, ... ([batch, heads, source, head_dim]))
    decode(decoder_input_ids [batch, 1], decoder_attention_mask [batch, past + 1],
           decoder_position_ids [batch, 1], encoder_attention_mask [batch, source],
           cache.0.key, cache.0.value, ... ([batch, heads, past + 1, head_dim]),
           cross.0.key, cross.0.value, ...)
        -> logits [batch, vocab]

decode's self-attention cache tensors are windows of the caller's buffers, the past and one free
column the step writes its new key and value into in place; the cross keys/values are read where
they lie (cache_window.py): no step copies a cache.

Sources are right-padded (as HF tokenizers pad T5 and BART); decoder rows of different lengths
share a step left-padded in the self-attention window (decoder_attention_mask 0 on the left),
with each row's own position (BART's learned positions; T5's relative bias only needs distances,
which left padding keeps). `forward` stays the plain logits export.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from .cache_window import STEP_TOKENS, window_cache, windows_after
from .errors import ExportError
from .generation_export import manifest_record as decoder_manifest_record
from .wrapper import NamedInputsWrapper

SEQ2SEQ_MODEL_TYPES = ("t5", "bart")
# (batch, source length, decoder steps of row 0) validated; row r takes r more decoder steps,
# so the batched step mixes decoder pasts of different lengths.
VALIDATION_SHAPES = ((1, 1, 1), (2, 6, 2), (3, 4, 4))


def supports_generation(model: torch.nn.Module) -> bool:
    config = getattr(model, "config", None)
    return getattr(config, "model_type", None) in SEQ2SEQ_MODEL_TYPES


def decoder_start_token_id(model: torch.nn.Module) -> int:
    generation = getattr(model, "generation_config", None)
    start = getattr(generation, "decoder_start_token_id", None)
    if start is None:
        start = getattr(model.config, "decoder_start_token_id", None)
    if start is None:
        raise ExportError(
            f"{type(model).__name__} has no decoder_start_token_id (config or generation_config)"
        )
    return int(start)


class Seq2SeqGenerationWrapper(NamedInputsWrapper):
    """NamedInputsWrapper (forward: the plain logits export) with encode and decode methods."""

    def __init__(self, base: NamedInputsWrapper, num_layers: int):
        super().__init__(base.model, base.input_names, base.output_names, base.head)
        self.num_layers = num_layers
        parameters = inspect.signature(base.model.forward).parameters
        # Transformers 5.x renames past_key_values to cache (the old name warns).
        self.cache_argument = "cache" if "cache" in parameters else "past_key_values"
        decoder = base.model.get_decoder()
        # BART numbers decoder positions from the cache length, one number for the whole batch;
        # rows of different lengths need their own, so decode swaps in a per-row lookup.
        embed = getattr(decoder, "embed_positions", None)
        self.learned_positions = embed if isinstance(getattr(embed, "offset", None), int) else None

    def _self_presents(self, cache: Any) -> list[torch.Tensor]:
        presents: list[torch.Tensor] = []
        for layer in cache.self_attention_cache.layers:
            presents += [layer.keys[:, :, -1:], layer.values[:, :, -1:]]
        return presents

    def encode(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, decoder_input_ids: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        from transformers import DynamicCache, EncoderDecoderCache

        config = self.model.config
        cache = EncoderDecoderCache(DynamicCache(config=config), DynamicCache(config=config))
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            use_cache=True,
            return_dict=True,
            **{self.cache_argument: cache},
        )
        cross: list[torch.Tensor] = []
        for layer in cache.cross_attention_cache.layers:
            cross += [layer.keys, layer.values]
        return (outputs.logits[:, -1, :], *self._self_presents(cache), *cross)

    def decode(
        self,
        decoder_input_ids: torch.Tensor,
        decoder_attention_mask: torch.Tensor,
        decoder_position_ids: torch.Tensor,
        encoder_attention_mask: torch.Tensor,
        *caches: torch.Tensor,
    ) -> torch.Tensor:
        from transformers import EncoderDecoderCache

        half = 2 * self.num_layers
        config = self.model.config
        cache = EncoderDecoderCache(
            window_cache(caches[:half], config, STEP_TOKENS), window_cache(caches[half:], config, 0)
        )
        cross_key = caches[half]
        # The cross keys/values come from the cache; the decoder reads the encoder states only
        # for their shape (masks), so a broadcast zero stands in for them.
        states = cross_key.new_zeros(()).expand(
            cross_key.shape[0], cross_key.shape[2], self.model.config.d_model
        )
        embed = self.learned_positions
        if embed is not None:
            weight, offset = embed.weight, embed.offset
            embed.forward = lambda *_args, **_kwargs: torch.nn.functional.embedding(
                decoder_position_ids + offset, weight
            )
        try:
            outputs = self.model(
                encoder_outputs=(states,),
                attention_mask=encoder_attention_mask,
                decoder_input_ids=decoder_input_ids,
                decoder_attention_mask=decoder_attention_mask,
                use_cache=True,
                return_dict=True,
                **{self.cache_argument: cache},
            )
        finally:
            if embed is not None:
                del embed.forward
        return outputs.logits[:, -1, :]


def right_padded(
    batch: int, length: int, vocab: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random source ids and a mask whose row r is r tokens shorter (right padding)."""
    ids = torch.randint(3, vocab, (batch, length), generator=generator)
    mask = torch.ones(batch, length, dtype=torch.long)
    for row in range(batch):
        mask[row, length - min(row, length - 1) :] = 0
    return ids, mask


def example_inputs(
    wrapper: Seq2SeqGenerationWrapper, vocab: int, batch: int, start: int
) -> dict[str, tuple[torch.Tensor, ...]]:
    """Trace inputs of encode (batch x 5 sources, padded) and decode (the second step)."""
    generator = torch.Generator().manual_seed(0)
    ids, mask = right_padded(batch, 5, vocab, generator)
    first = torch.full((batch, 1), start, dtype=torch.long)
    with torch.inference_mode():
        outputs = wrapper.encode(ids, mask, first)
    half = 2 * wrapper.num_layers
    # Windows of wider buffers (strided views), as the generator passes them.
    windows = [buffer[:, :, :2] for buffer in windows_after(list(outputs[1 : 1 + half]), 4)]
    cross = tuple(tensor.clone() for tensor in outputs[1 + half :])
    step_ids = torch.randint(3, vocab, (batch, 1), generator=generator)
    return {
        "encode": (ids, mask, first),
        "decode": (
            step_ids,
            torch.ones(batch, 2, dtype=torch.long),
            torch.ones(batch, 1, dtype=torch.long),
            mask,
            *windows,
            *cross,
        ),
    }


def _eager_next(
    model: torch.nn.Module, source: torch.Tensor, decoder: torch.Tensor
) -> torch.Tensor:
    """The eager model's next-token logits for one unpadded source and decoder prefix."""
    return model(
        input_ids=source, decoder_input_ids=decoder, use_cache=False, return_dict=True
    ).logits[:, -1, :]


def validate(
    model: torch.nn.Module, traced: Any, vocab: int, atol: float, start: int, num_layers: int
) -> list[dict[str, Any]]:
    """The traced encode + decode against the eager model's full forward, at VALIDATION_SHAPES:
    every row alone step by step, then one batched step over right-padded sources and decoder
    pasts of different lengths (left-padded windows). Raises ExportError above atol."""
    generator = torch.Generator().manual_seed(1)
    half = 2 * num_layers
    checks = []
    for batch, length, steps in VALIDATION_SHAPES:
        source, source_mask = right_padded(batch, length, vocab, generator)
        decoder = torch.randint(3, vocab, (batch, steps + batch + 1), generator=generator)
        decoder[:, 0] = start
        pasts = [steps + row for row in range(batch)]  # decoder tokens before the batched step
        worst = 0.0
        with torch.inference_mode():
            row_caches = []
            for row in range(batch):
                real = source[row : row + 1, : int(source_mask[row].sum())]
                outputs = traced.encode(real, torch.ones_like(real), decoder[row : row + 1, :1])
                eager = _eager_next(model, real, decoder[row : row + 1, :1])
                worst = max(worst, (eager - outputs[0]).abs().max().item())
                buffers = windows_after(list(outputs[1 : 1 + half]), pasts[row] + 2)
                cross = list(outputs[1 + half :])
                for step in range(1, pasts[row]):
                    logits = traced.decode(
                        decoder[row : row + 1, step : step + 1],
                        torch.ones(1, step + 1, dtype=torch.long),
                        torch.tensor([[step]]),
                        torch.ones_like(real),
                        *(buffer[:, :, : step + 1] for buffer in buffers),
                        *cross,
                    )
                    eager = _eager_next(model, real, decoder[row : row + 1, : step + 1])
                    worst = max(worst, (eager - logits).abs().max().item())
                row_caches.append([buffer[:, :, : pasts[row]] for buffer in buffers])
            # One step of the whole batch: cross keys/values of the padded batch's encode,
            # decoder pasts right-aligned in a window as wide as the longest.
            cross = traced.encode(source, source_mask, decoder[:, :1])[1 + half :]
            width = max(pasts)
            window = []
            for index in range(half):
                # One free column after the pasts (the step writes it), in a wider buffer.
                layer = torch.zeros((batch, *row_caches[0][index].shape[1:2], width + 3,
                                     row_caches[0][index].shape[3]))  # fmt: skip
                for row in range(batch):
                    layer[row, :, width - pasts[row] : width] = row_caches[row][index][0]
                window.append(layer[:, :, : width + 1])
            mask = torch.ones(batch, width + 1, dtype=torch.long)
            for row in range(batch):
                mask[row, : width - pasts[row]] = 0
            ids = torch.stack([decoder[row, pasts[row]] for row in range(batch)]).unsqueeze(1)
            positions = torch.tensor(pasts).unsqueeze(1)
            logits = traced.decode(ids, mask, positions, source_mask, *window, *cross)
            for row in range(batch):
                real = source[row : row + 1, : int(source_mask[row].sum())]
                eager = _eager_next(model, real, decoder[row : row + 1, : pasts[row] + 1])
                worst = max(worst, (eager - logits[row]).abs().max().item())
        passed = worst <= atol
        checks.append(
            {"batch": batch, "source": length, "decoder_steps": max(pasts) + 1,
             "max_abs_diff": worst, "passed": passed}
        )  # fmt: skip
        if not passed:
            raise ExportError(
                f"the traced encode/decode disagree with the eager model (max|diff| {worst:.3g} "
                f"> atol {atol:g}) at batch {batch}, source {length}; nothing was written"
            )
    return checks


def manifest_record(
    model: torch.nn.Module,
    example: dict[str, tuple[torch.Tensor, ...]],
    checks: list[dict[str, Any]],
    max_context: int,
    pad_token_id: int,
) -> dict[str, Any]:
    """The decoder record's fields (cache layout, special ids, HF generate's defaults) for an
    encoder-decoder: kind "encoder-decoder", the encode/decode methods, the cross cache layout,
    the decoder start and forced BOS/EOS ids."""
    num_layers = (len(example["decode"]) - 4) // 4
    # Reuse the decoder record with decode's self-attention cache where it expects one.
    past_view = {"decode": (None, None, None, *example["decode"][4 : 4 + 2 * num_layers])}
    record = decoder_manifest_record(model, past_view, checks, max_context, pad_token_id)
    cross = example["decode"][4 + 2 * num_layers :]
    record.update(
        {
            "kind": "encoder-decoder",
            "methods": {"encode": "encode", "decode": "decode"},
            "cross_cache": {
                "layout": ["batch", "heads", "source", "head_dim"],
                "key": [int(cross[0].shape[1]), int(cross[0].shape[3])],
                "value": [int(cross[1].shape[1]), int(cross[1].shape[3])],
            },
            "max_source": max_context,
            "decoder_start_token_id": decoder_start_token_id(model),
        }
    )
    return record
