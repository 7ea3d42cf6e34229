"""Causal-LM exports that generate: `prefill` and `decode` methods, the KV cache as flat tensors.

Transformers 5 removed tuple `past_key_values`, `DynamicCache.from_legacy_cache` and the
torchscript flag, so the wrapper takes the cache as one key and one value tensor per layer and
builds the cache object inside the traced code. libtsrunner's generator keeps the cache in its
own preallocated buffers, and one loaded model serves any number of sequences:

    prefill(input_ids, attention_mask, position_ids)
        -> (logits [batch, vocab] at the last position, present.0.key, present.0.value, ...
            ([batch, kv_heads, tokens, head_dim]))
    decode(input_ids [batch, 1], attention_mask [batch, past + 1], position_ids [batch, 1],
           cache.0.key, cache.0.value, ... ([batch, kv_heads, past + 1, head_dim]))
        -> logits [batch, vocab]

decode's cache tensors are windows of the caller's buffers: the past, then one free column into
which the step writes its new key and value in place (cache_window.py), so no step copies the
cache. Rows are left-padded (attention_mask 0 on the left), position ids count real tokens only,
as HF `generate` computes them. `forward` stays the plain logits export.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from .cache_window import STEP_TOKENS, window_cache, windows_after
from .errors import ExportError
from .wrapper import NamedInputsWrapper

# Model types whose decoder the generation wrapper is known to trace and validate.
GENERATING_MODEL_TYPES = ("gpt2", "llama", "qwen2", "mistral")
# Which HF generate parameters the runner applies, with HF's global defaults
# (GenerationConfig._get_default_generation_params). max_length stays None unless the model sets
# it: Transformers 5 then generates 20 new tokens (max_length 20 + the prompt), where a model's
# own max_length counts the prompt.
GENERATION_DEFAULTS: dict[str, Any] = {
    "max_length": None,
    "max_new_tokens": None,
    "min_length": 0,
    "min_new_tokens": None,
    "do_sample": False,
    "temperature": 1.0,
    "top_k": 50,
    "top_p": 1.0,
    "min_p": None,
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "num_beams": 1,
    "length_penalty": 1.0,
    "early_stopping": False,
    "num_return_sequences": 1,
}
# (batch, prompt, past) shapes decode is validated at after a prefill of `past` tokens.
VALIDATION_SHAPES = ((1, 1, 0), (2, 5, 3), (3, 2, 9), (4, 7, 1))
DECODE_STEPS = 3


def supports_generation(model: torch.nn.Module) -> bool:
    config = getattr(model, "config", None)
    return getattr(config, "model_type", None) in GENERATING_MODEL_TYPES


class GenerationWrapper(NamedInputsWrapper):
    """NamedInputsWrapper (forward: the plain logits export) with prefill and decode methods."""

    def __init__(self, base: NamedInputsWrapper, num_layers: int):
        super().__init__(base.model, base.input_names, base.output_names, base.head)
        self.num_layers = num_layers
        parameters = inspect.signature(base.model.forward).parameters
        self.keep_last = {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}
        # Transformers 5.x renames past_key_values to cache (the old name warns).
        self.cache_argument = "cache" if "cache" in parameters else "past_key_values"

    def _logits(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: Any,
    ) -> torch.Tensor:
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=True,
            return_dict=True,
            **{self.cache_argument: cache},
            **self.keep_last,
        )
        return outputs.logits[:, -1, :]

    def prefill(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        logits = self._logits(input_ids, attention_mask, position_ids, cache)
        presents: list[torch.Tensor] = []
        for layer in cache.layers:
            presents += [layer.keys, layer.values]
        return (logits, *presents)

    def decode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        *cache: torch.Tensor,
    ) -> torch.Tensor:
        windows = window_cache(cache, self.model.config, STEP_TOKENS)
        return self._logits(input_ids, attention_mask, position_ids, windows)


def left_padded(
    batch: int, length: int, vocab: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random ids, a mask whose rows have different lengths (left padding) and HF's position ids."""
    ids = torch.randint(3, vocab, (batch, length), generator=generator)
    mask = torch.ones(batch, length, dtype=torch.long)
    for row in range(batch):
        mask[row, : min(row, length - 1)] = 0
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    return ids, mask, positions


def example_inputs(
    wrapper: GenerationWrapper, vocab: int, batch: int
) -> dict[str, tuple[torch.Tensor, ...]]:
    """Trace inputs of prefill (batch x 5, padded) and decode (one token after those 5)."""
    generator = torch.Generator().manual_seed(0)
    ids, mask, positions = left_padded(batch, 5, vocab, generator)
    with torch.inference_mode():
        present = list(wrapper.prefill(ids, mask, positions)[1:])
    # Windows of wider buffers (strided views), as the generator passes them.
    cache = [buffer[:, :, :6] for buffer in windows_after(present, 8)]
    step_ids = torch.randint(3, vocab, (batch, 1), generator=generator)
    step_mask = torch.cat([mask, torch.ones(batch, 1, dtype=torch.long)], dim=1)
    return {
        "prefill": (ids, mask, positions),
        "decode": (step_ids, step_mask, positions[:, -1:] + 1, *cache),
    }


def validate(model: torch.nn.Module, traced: Any, vocab: int, atol: float) -> list[dict[str, Any]]:
    """Next-token logits of traced prefill + `DECODE_STEPS` decodes against the eager model's
    full forward over the same tokens, at VALIDATION_SHAPES (left-padded rows of different
    lengths). Raises ExportError on a difference above atol."""
    generator = torch.Generator().manual_seed(1)
    checks = []
    for batch, prompt, past in VALIDATION_SHAPES:
        total = past + prompt + DECODE_STEPS
        ids, mask, positions = left_padded(batch, total, vocab, generator)
        start = past + prompt
        worst = 0.0
        with torch.inference_mode():
            outputs = traced.prefill(ids[:, :start], mask[:, :start], positions[:, :start])
            # The cache as the generator keeps it: buffers wider than any step's window.
            buffers = windows_after(list(outputs[1:]), total + 2)
            got = [outputs[0]]
            for step in range(start, total):
                logits = traced.decode(
                    ids[:, step : step + 1],
                    mask[:, : step + 1],
                    positions[:, step : step + 1],
                    *(buffer[:, :, : step + 1] for buffer in buffers),
                )
                got.append(logits)
            for offset, logits in enumerate(got):
                end = start + offset
                eager = model(
                    input_ids=ids[:, :end],
                    attention_mask=mask[:, :end],
                    position_ids=positions[:, :end],
                    use_cache=False,
                ).logits[:, -1, :]
                worst = max(worst, (eager - logits).abs().max().item())
        passed = worst <= atol
        checks.append(
            {"batch": batch, "prompt": start, "decode_steps": DECODE_STEPS,
             "max_abs_diff": worst, "passed": passed}
        )  # fmt: skip
        if not passed:
            raise ExportError(
                f"the traced prefill/decode disagree with the eager model (max|diff| {worst:.3g} "
                f"> atol {atol:g}) at batch {batch}, prompt {start}; nothing was written"
            )
    return checks


def _token_ids(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    return [int(v) for v in value]


def manifest_record(
    model: torch.nn.Module,
    example: dict[str, tuple[torch.Tensor, ...]],
    checks: list[dict[str, Any]],
    max_context: int,
    pad_token_id: int,
) -> dict[str, Any]:
    """The manifest's "generation": the methods' contract, the cache layout (decode writes the
    step's keys/values into its cache windows: "update" "in_place"), the special ids and the
    generation defaults HF generate would apply (the model's generation_config.json over HF's
    global defaults)."""
    past = example["decode"][3:]
    config = getattr(model, "generation_config", None)
    stored = config.to_diff_dict() if config is not None else {}
    defaults = {
        name: (stored[name] if stored.get(name) is not None else default)
        for name, default in GENERATION_DEFAULTS.items()
    }
    eos = _token_ids(stored.get("eos_token_id", getattr(model.config, "eos_token_id", None)))
    bos = stored.get("bos_token_id", getattr(model.config, "bos_token_id", None))
    pad = stored.get("pad_token_id", getattr(model.config, "pad_token_id", None))
    forced_bos = stored.get(
        "forced_bos_token_id", getattr(model.config, "forced_bos_token_id", None)
    )
    forced_eos = stored.get(
        "forced_eos_token_id", getattr(model.config, "forced_eos_token_id", None)
    )
    return {
        "kind": "decoder",
        "methods": {"prefill": "prefill", "decode": "decode"},
        "num_layers": len(past) // 2,
        "cache": {
            "layout": ["batch", "heads", "sequence", "head_dim"],
            "key": [int(past[0].shape[1]), int(past[0].shape[3])],
            "value": [int(past[1].shape[1]), int(past[1].shape[3])],
            "dtype": str(past[0].dtype).removeprefix("torch."),
            "update": "in_place",
        },
        "max_context": max_context,
        "eos_token_ids": eos,
        "bos_token_id": int(bos) if bos is not None else None,
        "pad_token_id": int(pad) if pad is not None else pad_token_id,
        # HF's ForcedBOS/ForcedEOSTokenLogitsProcessor: the first new token, the last one.
        "forced_bos_token_id": int(forced_bos) if forced_bos is not None else None,
        "forced_eos_token_ids": _token_ids(forced_eos),
        "defaults": defaults,
        "generation_config": stored,
        "validation": checks,
    }
